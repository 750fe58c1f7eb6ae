"""Speckle filter of the classical water recipe, shared by ``baselines`` and the water model's scene features
(``scene_context``), so the network's prior channel and the baseline it is scored against are the same map."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

#: Side of the mean filter (pixels), the usual 7 x 7 of the classical recipe.
SPECKLE_WINDOW = 7
#: Rows or columns beyond a window that its filtered values depend on.
SPECKLE_HALO = SPECKLE_WINDOW // 2


def mean_filter(band: np.ndarray, size: int = SPECKLE_WINDOW) -> np.ndarray:
    """``size`` x ``size`` mean over the finite pixels (NaN stays NaN), in the band's own units (dB)."""
    finite = np.isfinite(band)
    total = uniform_filter(np.where(finite, band, 0.0).astype(np.float64), size, mode="nearest")
    count = uniform_filter(finite.astype(np.float64), size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / count).astype(np.float32)
    out[~finite] = np.nan
    return out
