"""A co-registered SAR / EO / label chip held in memory, and the split of scenes by location."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Scene:
    """One chip or scene on one grid. ``group`` is its location: splits never share a group."""

    name: str
    group: str
    sar: np.ndarray | None  # (C, H, W) float32, Sentinel-1 dB (NaN = nodata) or the dataset's native scale
    eo: np.ndarray | None  # (C, H, W) on the same grid
    label: np.ndarray | None  # (H, W) uint8 class ids, IGNORE_INDEX = nodata
    sar_bands: list[str] = field(default_factory=list)
    eo_bands: list[str] = field(default_factory=list)
    weight: float = 1.0  # random training windows are drawn in proportion to area x weight

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the grid."""
        for array in (self.sar, self.eo):
            if array is not None:
                return array.shape[1], array.shape[2]
        if self.label is not None:
            return self.label.shape
        raise ValueError(f"scene {self.name} has no raster")


def split_by_group(
    scenes: list[Scene], validation_fraction: float, seed: int = 0
) -> tuple[list[Scene], list[Scene]]:
    """(train, validation): whole groups, about ``validation_fraction`` of them, chosen reproducibly.

    With a fraction above 0 and at least two groups, validation gets at least one group and training keeps at
    least one.
    """
    groups = sorted({scene.group for scene in scenes})
    if validation_fraction <= 0 or len(groups) < 2:
        return list(scenes), []
    count = min(max(1, round(validation_fraction * len(groups))), len(groups) - 1)
    chosen = set(np.random.default_rng(seed).permutation(groups)[:count].tolist())
    return [s for s in scenes if s.group not in chosen], [s for s in scenes if s.group in chosen]
