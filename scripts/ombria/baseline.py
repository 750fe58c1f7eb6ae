"""Otsu thresholding of the Sentinel-1 after image, scored with the same per-chip protocol as the networks."""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

from hfd_core.data import Scene
from hfd_core.data.ombria import edge_fill
from hfd_core.metrics import confusion_matrix, per_chip_miou, scores


def otsu_flood_map(after: np.ndarray) -> np.ndarray:
    """Flood (1) where the SAR is not above the chip's Otsu threshold, else 0; a flat chip has no flood.

    The threshold is taken over the chip without its ``edge_fill`` (the networks' nodata), in the native
    dtype: for 8-bit chips the histogram has one bin per grey level.
    """
    after = np.asarray(after)
    data = after[~edge_fill(after[None])]
    if data.size == 0 or data.min() == data.max():
        return np.zeros(after.shape, np.int64)
    return (after <= threshold_otsu(data)).astype(np.int64)


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
