"""Classical Sentinel-1 water maps: the thresholds a SAR analyst uses, to score the models against.

``THRESHOLD_BASELINES`` maps a name to a function ``(vv_db, vh_db) -> water (bool, H, W)``; NaN pixels are
never water. The strongest, ``filtered bounded Otsu (VH)``, is the usual recipe: a 7 x 7 mean (speckle
filter, in dB), a per-scene Otsu threshold on the filtered VH, bounded by a physical limit for open water
(``WATER_VH_LIMIT_DB``: a threshold above it is lowered to it, so a dry scene's bimodal histogram does not
turn its darker half into water).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.filters import threshold_otsu

from hfd_core.data.scene_context import WATER_VH_LIMIT_DB
from hfd_core.data.speckle import mean_filter

WATER_VV_FIXED_DB = -15.0


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of the finite ``values`` (-inf for a flat scene). Whole numbers from 0 to 255 (8-bit
    images) get one histogram bin per grey level, as scikit-image gives integer arrays: its threshold is then
    the dark class's last level; other data get 256 bins and a bin centre."""
    finite = values[np.isfinite(values)]
    if not finite.size or finite.min() == finite.max():
        return -np.inf
    if finite.min() >= 0 and finite.max() <= 255 and np.array_equal(finite, np.round(finite)):
        finite = finite.astype(np.uint8)
    return float(threshold_otsu(finite))


def otsu_water(band: np.ndarray) -> np.ndarray:
    """Water at or below the scene's Otsu threshold of ``band``."""
    return np.isfinite(band) & (band <= _otsu(band))


def filtered_bounded_otsu_water(vh_db: np.ndarray) -> np.ndarray:
    """Water at or below min(Otsu threshold, ``WATER_VH_LIMIT_DB``) of the speckle-filtered VH."""
    filtered = mean_filter(vh_db)
    return np.isfinite(filtered) & (filtered <= min(_otsu(filtered), WATER_VH_LIMIT_DB))


THRESHOLD_BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Otsu (VV)": lambda vv, vh: otsu_water(vv),
    "Otsu (VH)": lambda vv, vh: otsu_water(vh),
    f"VV < {WATER_VV_FIXED_DB:g} dB": lambda vv, vh: vv < WATER_VV_FIXED_DB,
    "filtered bounded Otsu (VH)": lambda vv, vh: filtered_bounded_otsu_water(vh),
}
