"""Whole-scene evaluation of a model file on labelled scenes: pooled and per-chip scores.

Each scene is read the way the model expects (teacher: EO, student: SAR, from ``metadata.role``), normalised
with the model's stored statistics, padded to a multiple of 16 and predicted as ``segment_raster`` would:
windows of at least ``EVAL_WINDOW`` pixels (the whole chip for chips up to that size), overlapping by a
quarter of a window with class probabilities blended by the same ramp weights (the last row/column of windows
is moved inwards so every window is full). Hard cuts between small windows would change what a context-using
network predicts near them and score the cuts, not the model. Pixels whose input is NaN are nodata. Scores:
pooled confusion matrix over all scenes (mIoU, per-class IoU, OA, kappa, F1) and ``per_chip_miou``, the mean
over scenes of each scene's mIoU (the OmbriaNet evaluation protocol). A water model's report also scores the
classical thresholds (``threshold_maps``) on the same scenes and pixels, so every evaluation shows what the
model adds to a per-scene threshold (when the scenes hold raw SAR, not the model's features already).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hfd_core import IGNORE_INDEX
from hfd_core.baselines import THRESHOLD_BASELINES
from hfd_core.data import Scene
from hfd_core.data.ombria import sar_with_nodata
from hfd_core.data.scene_context import SCENE_KIND, SceneContext, water_features
from hfd_core.errors import InputError
from hfd_core.infer.tiled import ramp_window
from hfd_core.metrics import confusion_matrix, per_chip_miou, scores
from hfd_core.modelfile import ModelMetadata, load_model
from hfd_core.train.distributed import resolve_device

MULTIPLE = 16
#: Smallest evaluation window (pixels); a model's own tile size is used when larger.
EVAL_WINDOW = 512


def model_input(scene: Scene, metadata: ModelMetadata) -> np.ndarray:
    """The scene's raster the model reads: EO for a teacher, SAR for a student; the model's bands picked by
    name (a scene may hold more, e.g. OMBRIA's before and after images for a model reading the after one)."""
    attribute = "eo" if metadata.role == "teacher" else "sar"
    array, bands = getattr(scene, attribute), getattr(scene, f"{attribute}_bands")
    if array is None:
        raise InputError(
            f"scene {scene.name} has no {attribute.upper()}, which this {metadata.role} model reads"
        )
    if attribute == "sar" and _holds_raw_sar(scene, metadata):
        return _scene_features(scene)
    missing = [band for band in metadata.bands if band not in bands]
    if missing:
        raise InputError(
            f"scene {scene.name} has {attribute.upper()} bands {bands}, the model expects {metadata.bands}"
        )
    if list(bands) == list(metadata.bands):
        return array
    return array[[list(bands).index(band) for band in metadata.bands]]


def _holds_raw_sar(scene: Scene, metadata: ModelMetadata) -> bool:
    """Whether a water model (``SCENE_KIND``) is given a scene's raw SAR, not the model's features already."""
    return metadata.input_kind == SCENE_KIND and list(scene.sar_bands) != list(metadata.bands)


def _raw_water_sar(scene: Scene) -> tuple[np.ndarray, str]:
    """(array, kind): a scene's last VV band (OMBRIA's after image) and VH if any, float32 with NaN nodata;
    kind ``stretched`` for 8-bit arrays (OMBRIA; their ``edge_fill`` is nodata), else ``db``."""
    names = [band.upper() for band in scene.sar_bands]
    picked = [
        max(i for i, n in enumerate(names) if n.startswith(p))
        for p in ("VV", "VH")
        if any(n.startswith(p) for n in names)
    ]
    if not picked or not names[picked[0]].startswith("VV"):
        raise InputError(
            f"scene {scene.name} has no VV band (bands {scene.sar_bands}); the water model needs VV"
        )
    if scene.sar.dtype == np.uint8:
        return sar_with_nodata(scene.sar[picked]), "stretched"
    return scene.sar[picked].astype(np.float32), "db"


def _scene_features(scene: Scene) -> np.ndarray:
    """Water-model input from a scene's raw SAR (``_raw_water_sar``)."""
    sar, kind = _raw_water_sar(scene)
    return water_features(sar, SceneContext.of(sar, kind))


def threshold_maps(scene: Scene) -> dict[str, np.ndarray]:
    """The classical water maps of a scene that a water model reads, by name (uint8: 1 water, 0 not,
    ``IGNORE_INDEX`` where the input is NaN): ``baselines.THRESHOLD_BASELINES`` on calibrated VV and VH (those
    that need only VV without VH), Otsu on VV alone for an 8-bit stretched image (no dB there)."""
    sar, kind = _raw_water_sar(scene)
    valid = np.isfinite(sar).all(axis=0)
    vv, vh = sar[0], sar[1] if len(sar) > 1 else None
    if kind == "stretched":
        methods = {"Otsu (VV)": THRESHOLD_BASELINES["Otsu (VV)"]}
    else:
        methods = {n: f for n, f in THRESHOLD_BASELINES.items() if vh is not None or "VH" not in n}
    maps = {}
    for name, method in methods.items():
        water = method(np.where(valid, vv, np.nan), None if vh is None else np.where(valid, vh, np.nan))
        maps[name] = np.where(valid, water, IGNORE_INDEX).astype(np.uint8)
    return maps


def _window_starts(size: int, window: int, stride: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    return starts if starts[-1] == size - window else [*starts, size - window]


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    metadata: ModelMetadata,
    scene: Scene,
    device: torch.device,
    batch_size: int = 4,
    window: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities (K, H, W) float32, valid mask (H, W)) of ``scene``, windows blended; the input is
    NaN where the mask is False. ``window``: side of the prediction windows (default: the larger of the
    model's tile size and ``EVAL_WINDOW``)."""
    array = model_input(scene, metadata).astype(np.float32)
    mean = np.asarray(metadata.mean, np.float32)[:, None, None]
    std = np.asarray(metadata.std, np.float32)[:, None, None]
    valid = np.isfinite(array).all(axis=0)
    x = np.nan_to_num((array - mean) / std, nan=0.0)
    rows, cols = x.shape[1:]
    padded = np.pad(x, ((0, 0), (0, -rows % MULTIPLE), (0, -cols % MULTIPLE)))
    side = window or max(metadata.tile_size, EVAL_WINDOW)
    side = max(MULTIPLE, side // MULTIPLE * MULTIPLE)
    wr, wc = min(side, padded.shape[1]), min(side, padded.shape[2])
    overlap = side // 4
    origins = [
        (r, c)
        for r in _window_starts(padded.shape[1], wr, wr - overlap)
        for c in _window_starts(padded.shape[2], wc, wc - overlap)
    ]
    weights = torch.from_numpy(ramp_window(side, overlap)[:wr, :wc])
    probabilities = torch.zeros((metadata.config.num_classes, *padded.shape[1:]))
    total = torch.zeros(padded.shape[1:])
    model.eval()
    for first in range(0, len(origins), batch_size):
        chunk = origins[first : first + batch_size]
        batch = torch.from_numpy(np.stack([padded[:, r : r + wr, c : c + wc] for r, c in chunk])).to(device)
        tiles = torch.softmax(model(batch).float(), dim=1).cpu()
        for (r, c), tile in zip(chunk, tiles, strict=True):
            probabilities[:, r : r + wr, c : c + wc] += tile * weights
            total[r : r + wr, c : c + wc] += weights
    return (probabilities / total)[:, :rows, :cols].numpy(), valid


def predict_scene(
    model: nn.Module,
    metadata: ModelMetadata,
    scene: Scene,
    device: torch.device,
    batch_size: int = 4,
    window: int | None = None,
) -> np.ndarray:
    """Class map (H, W) uint8 of ``scene`` (``predict_probabilities``' arg-max); IGNORE_INDEX where the
    input is NaN."""
    probabilities, valid = predict_probabilities(model, metadata, scene, device, batch_size, window)
    prediction = probabilities.argmax(0).astype(np.uint8)
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
    matrices, chips, thresholds = [], [], {}
    for index, scene in enumerate(labelled):
        prediction = predict_scene(model, metadata, scene, torch_device)
        matrix = _confusion(prediction, scene.label, num_classes)
        matrices.append(matrix)
        chips.append({"name": scene.name, "miou": float(scores(matrix)["miou"])})
        if _holds_raw_sar(scene, metadata):
            for name, water in threshold_maps(scene).items():
                thresholds.setdefault(name, []).append(_confusion(water, scene.label, num_classes))
        if progress is not None:
            progress(index + 1, len(labelled))
    pooled = scores(sum(matrices))
    names = [c.name for c in metadata.classes]
    report = {
        "role": metadata.role,
        "bands": list(metadata.bands),
        "classes": names,
        "num_scenes": len(labelled),
        **_summary(matrices, names),
        "oa": float(pooled["oa"]),
        "kappa": float(pooled["kappa"]),
        "f1": dict(zip(names, map(float, pooled["f1"]), strict=True)),
        "confusion_matrix": np.asarray(sum(matrices)).tolist(),
        "per_chip": chips,
    }
    if thresholds:
        report["thresholds"] = {name: _summary(found, names) for name, found in thresholds.items()}
    return report


def _confusion(prediction: np.ndarray, label: np.ndarray, num_classes: int) -> torch.Tensor:
    return confusion_matrix(
        torch.from_numpy(prediction.astype(np.int64)), torch.from_numpy(label.astype(np.int64)), num_classes
    )


def _summary(matrices: list[torch.Tensor], names: list[str]) -> dict:
    """Pooled mIoU, per-class IoU and per-chip mIoU of one method's confusion matrices (the model's report
    and each threshold's)."""
    pooled = scores(sum(matrices))
    return {
        "miou": float(pooled["miou"]),
        "per_class_iou": dict(zip(names, map(float, pooled["iou"]), strict=True)),
        "per_chip_miou": float(per_chip_miou(matrices)),
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
    if report.get("thresholds"):
        water = report["classes"][-1]
        lines += [
            f"classical thresholds on the same pixels ({water} IoU, mIoU, per-chip mIoU):",
            f"{'the model':<28} {report['per_class_iou'][water]:>8.4f} {report['miou']:>8.4f} "
            f"{report['per_chip_miou']:>8.4f}",
        ]
        lines += [
            f"{name:<28} {result['per_class_iou'][water]:>8.4f} {result['miou']:>8.4f} "
            f"{result['per_chip_miou']:>8.4f}"
            for name, result in report["thresholds"].items()
        ]
    return "\n".join(lines)
