"""Sentinel-1 value conventions: dB or linear power, conversion, plausibility.

Sigma0 in dB of land and water lies mostly between -35 and +5 dB and is mostly negative; linear power is
non-negative and mostly below 1 (rarely above 10 even on corner reflectors). Amplitude (square root of power)
is also non-negative and below ~3: it is treated as linear power would be only if the caller says so; the
detector reports it as "linear" (the difference shows as a ~2x offset in dB, which the range check catches
poorly, so callers should say which they have when they know).
"""

from __future__ import annotations

import numpy as np

from hfd_core.errors import InputError

#: Plausible range of Sentinel-1 sigma0 in dB for the bulk of pixels (1st to 99th percentile).
DB_RANGE = (-50.0, 20.0)
_EPSILON = 1e-6


def _finite_sample(values: np.ndarray, limit: int = 200_000) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size > limit:
        flat = flat[np.linspace(0, flat.size - 1, limit).astype(np.int64)]
    return flat


def detect_sar_scale(values: np.ndarray) -> str:
    """ "db" or "linear" from the distribution of finite values; InputError when there is none."""
    sample = _finite_sample(values)
    if sample.size == 0:
        raise InputError("the SAR input has no valid (finite, non-nodata) pixel")
    negative_share = float(np.mean(sample < 0))
    median = float(np.median(sample))
    if negative_share > 0.05 or median < -1.0:
        return "db"
    return "linear" if float(np.percentile(sample, 99)) < 20.0 else "db"


def linear_to_db(values: np.ndarray) -> np.ndarray:
    """10 log10 of linear power (float32); values <= 1e-6 clipped there, NaN kept."""
    values = np.asarray(values, dtype=np.float32)
    return (10.0 * np.log10(np.maximum(values, _EPSILON))).astype(np.float32)  # np.maximum keeps NaN


def check_sar_db_range(values: np.ndarray, band_names: list[str] | None = None) -> None:
    """InputError when the bulk of ``values`` (C, ...) cannot be Sentinel-1 sigma0 in dB."""
    values = np.asarray(values)
    bands = values.reshape(values.shape[0], -1) if values.ndim > 1 else values[None]
    for index, band in enumerate(bands):
        sample = _finite_sample(band)
        name = band_names[index] if band_names else f"band {index + 1}"
        if sample.size == 0:
            raise InputError(f"SAR {name} has no valid pixel (all nodata or NaN)")
        low, high = np.percentile(sample, [1, 99])
        if low < DB_RANGE[0] or high > DB_RANGE[1]:
            raise InputError(
                f"SAR {name} values ({low:.3g} to {high:.3g} for the 1st-99th percentile) are not Sentinel-1 "
                f"sigma0 in dB (expected mostly within {DB_RANGE[0]:.0f} to {DB_RANGE[1]:.0f} dB); check the "
                "band selection and whether the input is linear power, amplitude or digital numbers"
            )
