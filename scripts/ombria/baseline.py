"""Otsu thresholding of the Sentinel-1 after image, scored with the same per-chip protocol as the networks."""

from __future__ import annotations

import numpy as np

from hfd_core.baselines import otsu_water
from hfd_core.data import Scene
from hfd_core.data.ombria import sar_with_nodata
from hfd_core.metrics import confusion_matrix, per_chip_miou, scores


def otsu_flood_map(after: np.ndarray) -> np.ndarray:
    """Flood (1) where the 8-bit after image is at or below the chip's Otsu threshold, else 0:
    ``baselines.otsu_water`` with the chip's ``edge_fill`` as nodata (the Otsu (VV) that ``evaluate`` scores
    beside a water model)."""
    return otsu_water(sar_with_nodata(np.asarray(after)[None])[0]).astype(np.int64)


def evaluate_otsu(scenes: list[Scene]) -> dict:
    """Pooled mIoU, OA, kappa and per-chip mIoU of Otsu on each scene's last SAR band (the after image)."""
    matrices = [
        confusion_matrix(otsu_flood_map(scene.sar[-1]), scene.label.astype(np.int64), 2) for scene in scenes
    ]
    pooled = scores(sum(matrices))
    return {
        "num_scenes": len(scenes),
        "per_chip_miou": per_chip_miou(matrices),
        "miou": pooled["miou"],
        "oa": pooled["oa"],
        "kappa": pooled["kappa"],
    }
