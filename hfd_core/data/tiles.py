"""Paired SAR / EO / label tiles for training and validation (a torch Dataset over in-memory scenes).

* ``mode="random"``: ``samples_per_epoch`` windows per epoch; item ``k`` of epoch ``e`` is drawn from a
  generator seeded with ``(seed, e, k)``, so an epoch is reproducible (exact resume) yet every epoch differs
  (the training loop calls ``set_epoch``). Scenes are picked in proportion to their area times their
  ``weight``.
* ``mode="grid"``: a regular non-overlapping grid of windows covering every scene (validation).
Scenes or edges smaller than the tile are padded; padding is invalid. Augmentation (flips and 90-degree
rotations) is applied identically to SAR, EO, label and mask. Inputs are normalised per band with the stored
statistics, non-finite values become 0, and pixels where the model's input is not finite get IGNORE_INDEX.
The model's input is the SAR when ``sar_stats`` is given (student), else the EO (teacher).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from hfd_core import IGNORE_INDEX
from hfd_core.data.normalization import BandStats, normalize
from hfd_core.data.scene import Scene


class PairedTileDataset(Dataset):
    """Items: {"sar": (Cs,T,T) float32, "eo": (Ce,T,T) float32, "label": (T,T) int64, "valid": (T,T) bool,
    "distill_valid": (T,T) bool}: ``valid`` where the model's input is finite, ``distill_valid`` where the EO
    is finite too (a scene without EO, given as NaN, trains the student's labels but is not distilled)."""

    def __init__(
        self,
        scenes: list[Scene],
        tile_size: int,
        sar_stats: BandStats | None = None,
        eo_stats: BandStats | None = None,
        mode: str = "random",
        samples_per_epoch: int | None = None,
        augment: bool = False,
        seed: int = 0,
    ):
        if mode not in ("random", "grid"):
            raise ValueError(f"mode must be 'random' or 'grid', not {mode!r}")
        if sar_stats is None and eo_stats is None:
            raise ValueError("give sar_stats (student input) and/or eo_stats (teacher input)")
        if not scenes:
            raise ValueError("no scenes")
        for attribute, stats in (("sar", sar_stats), ("eo", eo_stats)):
            missing = [s.name for s in scenes if stats is not None and getattr(s, attribute) is None]
            if missing:
                raise ValueError(f"scenes without {attribute.upper()}: {', '.join(missing[:5])}")
        self.scenes = scenes
        self.tile_size = tile_size
        self.sar_stats, self.eo_stats = sar_stats, eo_stats
        self.mode = mode
        self.samples_per_epoch = samples_per_epoch or 256
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        areas = np.array([s.shape[0] * s.shape[1] * s.weight for s in scenes], np.float64)
        self.scene_weights = areas / areas.sum()
        self.grid = [
            (index, row, col)
            for index, scene in enumerate(scenes)
            for row in range(0, scene.shape[0], tile_size)
            for col in range(0, scene.shape[1], tile_size)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch if self.mode == "random" else len(self.grid)

    def _window(self, index: int) -> tuple[int, int, int, np.random.Generator | None]:
        if self.mode == "grid":
            return (*self.grid[index], None)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        scene = int(rng.choice(len(self.scenes), p=self.scene_weights))
        rows, cols = self.scenes[scene].shape
        row = int(rng.integers(0, max(rows - self.tile_size, 0) + 1))
        col = int(rng.integers(0, max(cols - self.tile_size, 0) + 1))
        return scene, row, col, rng

    def _crop(self, array: np.ndarray, row: int, col: int, fill: float, dtype: type) -> np.ndarray:
        """(..., T, T) window at (row, col) as ``dtype``, padded with ``fill`` beyond the array."""
        t = self.tile_size
        window = array[..., row : row + t, col : col + t].astype(dtype)
        pad = [(0, 0)] * (window.ndim - 2) + [(0, t - window.shape[-2]), (0, t - window.shape[-1])]
        return np.pad(window, pad, constant_values=fill) if any(p[1] for p in pad[-2:]) else window

    def _input(self, array: np.ndarray | None, stats: BandStats | None, row: int, col: int) -> np.ndarray:
        if stats is None or array is None:
            return np.zeros((0, self.tile_size, self.tile_size), np.float32)
        return self._crop(array, row, col, np.nan, np.float32)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene_index, row, col, rng = self._window(index)
        scene = self.scenes[scene_index]
        sar = self._input(scene.sar, self.sar_stats, row, col)
        eo = self._input(scene.eo, self.eo_stats, row, col)
        model_input = sar if self.sar_stats is not None else eo
        valid = np.isfinite(model_input).all(axis=0)
        if scene.label is None:
            label = np.full(valid.shape, IGNORE_INDEX, np.int64)
        else:
            label = self._crop(scene.label, row, col, IGNORE_INDEX, np.int64)
        label[~valid] = IGNORE_INDEX
        distill_valid = valid & np.isfinite(eo).all(axis=0)
        if self.sar_stats is not None:
            sar = normalize(sar, self.sar_stats)
        if self.eo_stats is not None:
            eo = normalize(eo, self.eo_stats)
        arrays = [sar, eo, label, valid, distill_valid]
        if self.augment and rng is not None:
            turns, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
            arrays = [np.rot90(a, turns, axes=(-2, -1)) for a in arrays]
            if flip:
                arrays = [np.flip(a, axis=-1) for a in arrays]
        sar, eo, label, valid, distill_valid = (np.ascontiguousarray(a) for a in arrays)
        return {
            "sar": torch.from_numpy(sar),
            "eo": torch.from_numpy(eo),
            "label": torch.from_numpy(label),
            "valid": torch.from_numpy(valid),
            "distill_valid": torch.from_numpy(distill_valid),
        }
