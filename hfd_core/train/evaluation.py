"""Whole-scene evaluation of a model file on labelled scenes: pooled and per-chip scores.

Each scene is read the way the model expects (teacher: EO, student: SAR, from ``metadata.role``), normalised
with the model's stored statistics, padded to a multiple of 16 and predicted window by window (windows of the
model's tile size; the last row/column of windows is moved inwards so every window is full). Pixels whose
input is NaN are nodata. Scores: pooled confusion matrix over all scenes (mIoU, per-class IoU, OA, kappa, F1)
and ``per_chip_miou``, the mean over scenes of each scene's mIoU (the OmbriaNet evaluation protocol).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hfd_core import IGNORE_INDEX
from hfd_core.data import Scene
from hfd_core.errors import InputError
from hfd_core.metrics import confusion_matrix, per_chip_miou, scores
from hfd_core.modelfile import ModelMetadata, load_model
from hfd_core.train.distributed import resolve_device

MULTIPLE = 16


def model_input(scene: Scene, metadata: ModelMetadata) -> np.ndarray:
    """The scene's raster the model reads: EO for a teacher, SAR for a student; the model's bands picked by
    name (a scene may hold more, e.g. OMBRIA's before and after images for a model reading the after one)."""
    attribute = "eo" if metadata.role == "teacher" else "sar"
    array, bands = getattr(scene, attribute), getattr(scene, f"{attribute}_bands")
    if array is None:
        raise InputError(
            f"scene {scene.name} has no {attribute.upper()}, which this {metadata.role} model reads"
        )
    missing = [band for band in metadata.bands if band not in bands]
    if missing:
        raise InputError(
            f"scene {scene.name} has {attribute.upper()} bands {bands}, the model expects {metadata.bands}"
        )
    if list(bands) == list(metadata.bands):
        return array
    return array[[list(bands).index(band) for band in metadata.bands]]


def _window_starts(size: int, window: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, window))
    return starts if starts[-1] == size - window else [*starts, size - window]


@torch.no_grad()
def predict_scene(
    model: nn.Module, metadata: ModelMetadata, scene: Scene, device: torch.device, batch_size: int = 4
) -> np.ndarray:
    """Class map (H, W) uint8 of ``scene``; IGNORE_INDEX where the input is NaN."""
    array = model_input(scene, metadata).astype(np.float32)
    mean = np.asarray(metadata.mean, np.float32)[:, None, None]
    std = np.asarray(metadata.std, np.float32)[:, None, None]
    valid = np.isfinite(array).all(axis=0)
    x = np.nan_to_num((array - mean) / std, nan=0.0)
    rows, cols = x.shape[1:]
    padded = np.pad(x, ((0, 0), (0, -rows % MULTIPLE), (0, -cols % MULTIPLE)))
    window = max(MULTIPLE, metadata.tile_size // MULTIPLE * MULTIPLE)
    wr, wc = min(window, padded.shape[1]), min(window, padded.shape[2])
    origins = [
        (r, c) for r in _window_starts(padded.shape[1], wr) for c in _window_starts(padded.shape[2], wc)
    ]
    prediction = np.zeros(padded.shape[1:], np.uint8)
    model.eval()
    for first in range(0, len(origins), batch_size):
        chunk = origins[first : first + batch_size]
        batch = torch.from_numpy(np.stack([padded[:, r : r + wr, c : c + wc] for r, c in chunk])).to(device)
        classes = model(batch).argmax(1).to(torch.uint8).cpu().numpy()
        for (r, c), tile in zip(chunk, classes, strict=True):
            prediction[r : r + wr, c : c + wc] = tile
    prediction = prediction[:rows, :cols]
    prediction[~valid] = IGNORE_INDEX
    return prediction


def evaluate_scenes(
    model: nn.Module,
    metadata: ModelMetadata,
    scenes: list[Scene],
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Scores of ``model`` on the labelled ``scenes`` (see the module docstring); JSON-ready dict."""
    labelled = [scene for scene in scenes if scene.label is not None]
    if not labelled:
        raise InputError("none of the scenes has labels to evaluate against")
    torch_device = resolve_device(device)
    model = model.to(torch_device)
    num_classes = metadata.config.num_classes
    matrices, chips = [], []
    for index, scene in enumerate(labelled):
        prediction = predict_scene(model, metadata, scene, torch_device)
        matrix = confusion_matrix(
            torch.from_numpy(prediction.astype(np.int64)),
            torch.from_numpy(scene.label.astype(np.int64)),
            num_classes,
        )
        matrices.append(matrix)
        chips.append({"name": scene.name, "miou": float(scores(matrix)["miou"])})
        if progress is not None:
            progress(index + 1, len(labelled))
    pooled = scores(sum(matrices))
    names = [c.name for c in metadata.classes]
    return {
        "role": metadata.role,
        "bands": list(metadata.bands),
        "classes": names,
        "num_scenes": len(labelled),
        "miou": float(pooled["miou"]),
        "per_class_iou": dict(zip(names, map(float, pooled["iou"]), strict=True)),
        "oa": float(pooled["oa"]),
        "kappa": float(pooled["kappa"]),
        "f1": dict(zip(names, map(float, pooled["f1"]), strict=True)),
        "per_chip_miou": float(per_chip_miou(matrices)),
        "confusion_matrix": np.asarray(sum(matrices)).tolist(),
        "per_chip": chips,
    }


def evaluate_model_file(path: str | Path, scenes: list[Scene], device: str = "auto") -> dict:
    """Load a model file and ``evaluate_scenes``; the report names the file."""
    model, metadata = load_model(path)
    return {"model": str(path), **evaluate_scenes(model, metadata, scenes, device)}


def format_report(report: dict) -> str:
    """Human-readable summary of an evaluation report."""
    lines = [
        f"{report['num_scenes']} scenes, {report['role']} model",
        f"mIoU {report['miou']:.4f}   per-chip mIoU {report['per_chip_miou']:.4f}   "
        f"OA {report['oa']:.4f}   kappa {report['kappa']:.4f}",
        f"{'class':<20} {'IoU':>8} {'F1':>8}",
    ]
    lines += [
        f"{name:<20} {iou:>8.4f} {report['f1'][name]:>8.4f}" for name, iou in report["per_class_iou"].items()
    ]
    return "\n".join(lines)
