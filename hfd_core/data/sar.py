"""Sentinel-1 value conventions: dB, linear power or amplitude, conversion to dB, plausibility.

Sigma0 in dB of land and water lies mostly between -35 and +5 dB and is mostly negative; linear power is
non-negative and mostly below 1 (rarely above 10 even on corner reflectors); amplitude (square root of power)
is non-negative too, and in dB (20 log10) gives the same values as power does with 10 log10. Taken for power,
an amplitude image reads as half its true dB value: about -6 dB instead of -12 over land, well inside the
plausible dB range, so a range check cannot catch it (a probe found 33 % agreement with the dB run).

Power and amplitude are therefore told apart with dB statistics (mean, std per band) of where the bulk of
Sentinel-1 input lies: ``TYPICAL_DB`` for VV and VH, the model's training statistics for other bands. Both
readings are converted to dB and the one whose band medians lie closer to the means (squared z-scores,
averaged over bands) wins. On 13 real Sentinel-1 chips in dB (Sen1Floods11, SEN12MS, SEN12MS-CR, SSL4EO-S12,
STAC Overflow, the demo sample), turned into power and into amplitude, the right reading was closer every time
with ``TYPICAL_DB``, the smallest margin 0.70 (Sri Lanka, 98 % water, amplitude). A model's own statistics
describe its training scenes, not Sentinel-1: those of the land-cover student trained without the flooded
India chip (std 3.2 and 3.3 dB) read Sri Lanka's amplitude as power. A margin below ``AMBIGUOUS_MARGIN`` is
refused with a message naming INPUT_SCALE rather than guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hfd_core.errors import InputError
from hfd_core.infer import INPUT_SCALES

if TYPE_CHECKING:
    from hfd_core.data.bands import BandChoice

#: Plausible range of Sentinel-1 sigma0 in dB for the bulk of pixels (1st to 99th percentile).
DB_RANGE = (-50.0, 20.0)
#: Sigma0 dB statistics (mean, std) of the land-cover training scenes with the flooded Sen1Floods11 India chip
#: (dry land, forest, crops and open water), used to tell power from amplitude in bands VV and VH.
TYPICAL_DB = {"VV": (-11.84, 4.65), "VH": (-18.97, 5.72)}
#: Power and amplitude readings closer than this (difference of mean squared z-scores) are not guessed.
AMBIGUOUS_MARGIN = 0.35
#: Power or amplitude converted to dB reads at least this (``DB_RANGE``'s floor): the darkest sigma0 of the
#: calibrated samples (the VH of India's and Sri Lanka's flood water reaches -46 to -54 dB in its darkest
#: 1 %). Zeros in some bands only are measurements below the noise floor, which thermal noise removal clips
#: to 0 (calm water in VH above all), so they read as the darkest water, not as data the scene cannot hold:
#: at -60 dB, 1 % of them had a linear scene refused as "not Sentinel-1 dB". Zeros in every band are border
#: fill (nodata, ``mask_zero_fill``).
POWER_FLOOR_DB = DB_RANGE[0]
#: Raw SAR values below this are backscatter in no scale (dB reaches about -60 at the noise floor; power and
#: amplitude are non-negative): nodata the file does not declare, such as -9999 or -32768. Taken for
#: backscatter, a border of -9999 four columns wide (0.8 % of Sen1Floods11 Sri-Lanka_534068) shifted the water
#: model's scene statistics so far that it mapped 4 % of the chip water instead of 99 % (water IoU 0.030
#: instead of 0.993), and the dB range check, which looks at the 1st percentile, did not see it.
FILL_BELOW = -100.0
_SCALE_HINT = (
    "choose the input scale (INPUT_SCALE in hfd:segment, --input-scale on the command line: dB, linear "
    "power or amplitude), or convert the raster to sigma0 in dB"
)


def _finite_sample(values: np.ndarray, limit: int = 200_000) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size > limit:
        flat = flat[np.linspace(0, flat.size - 1, limit).astype(np.int64)]
    return flat


def _band_names(count: int, band_names: list[str] | None) -> list[str]:
    return list(band_names) if band_names else [f"band {index + 1}" for index in range(count)]


def _negative(sample: np.ndarray) -> bool:
    """More than 5 % of the values negative, or a median below -1: what power and amplitude cannot be."""
    return float(np.mean(sample < 0)) > 0.05 or float(np.median(sample)) < -1.0


def _looks_like_db(sample: np.ndarray) -> bool:
    """Finite values that power and amplitude cannot hold: ``_negative``, or a 99th percentile of 20 or more
    (power above 100, amplitude above 20: not Sentinel-1 sigma0)."""
    return _negative(sample) or float(np.percentile(sample, 99)) >= 20.0


def _check_requested_scale(sample: np.ndarray, requested: str) -> None:
    """InputError when the chosen scale contradicts the values: dB chosen for values that only power or
    amplitude can be, or power or amplitude for negative values. Either had mapped the demo scene with exit
    code 0 and no warning (92 % bare ground, 99.5 % low vegetation). Power against amplitude is left to the
    user (the values alone cannot always tell them apart, module doc); values too bright for any scale are
    refused after conversion (``check_sar_db_range``)."""
    sample = _finite_sample(sample)
    if sample.size == 0 or requested == "auto":
        return
    facts = f"{np.mean(sample < 0):.0%} of the values are negative, median {np.median(sample):.3g}"
    if requested == "db" and not _looks_like_db(sample):
        raise InputError(
            f"the input scale dB was chosen, but {facts}: sigma0 in dB is mostly negative (about -12 dB "
            f"in VV and -19 dB in VH over land), so these values look like linear power or amplitude; "
            f"{_SCALE_HINT}"
        )
    if requested != "db" and _negative(sample):
        raise InputError(
            f"the input scale {requested} was chosen, but {facts}: power and amplitude are never "
            f"negative, so these values look like dB; {_SCALE_HINT}"
        )


def detect_sar_scale(
    values: np.ndarray, mean: list[float] | None = None, std: list[float] | None = None
) -> str:
    """ "db", "linear" or "amplitude" from the distribution of finite values of (C, ...) ``values``;
    InputError when there is none. Without the model's ``mean``/``std`` (dB, per band) non-negative values
    are reported as "linear"; with them power and amplitude are told apart (module doc) or refused."""
    sample = _finite_sample(values)
    if sample.size == 0:
        raise InputError("the SAR input has no valid (finite, non-nodata) pixel")
    if _looks_like_db(sample):
        return "db"
    if mean is None or std is None:
        return "linear"
    bands = np.asarray(values).reshape(len(mean), -1)
    medians = np.array([np.median(_finite_sample(band)) for band in bands])
    mean, std = np.asarray(mean), np.asarray(std)
    distances = {
        scale: float(np.mean(((to_db(medians, scale) - mean) / std) ** 2))
        for scale in ("linear", "amplitude")
    }
    if abs(distances["linear"] - distances["amplitude"]) < AMBIGUOUS_MARGIN:
        raise InputError(
            "cannot tell whether the SAR input is linear power or amplitude (band medians "
            f"{', '.join(f'{m:.3g}' for m in medians)}: {to_db(medians, 'linear').round(1).tolist()} dB as "
            f"power, {to_db(medians, 'amplitude').round(1).tolist()} dB as amplitude): {_SCALE_HINT}"
        )
    return min(distances, key=distances.get)


def check_polarisation_order(values: np.ndarray, wanted: list[str], choice: BandChoice, source: str) -> None:
    """InputError when the bands taken as VV and VH look swapped: the band taken as VV has the lower median.
    Cross-polarised VH is darker than VV on nearly all ground: VV's median is 4.9 to 14.8 dB above VH's on
    every Sentinel-1 sample in ../shared/data (Sen1Floods11, SEN12MS, SEN12MS-CR, BigEarthNet, SSL4EO-S12,
    STAC Overflow; the highest on the all-water Sri Lanka chip), and VH, VV is the order that stacking
    ``*_VH.tif`` and ``*_VV.tif`` alphabetically gives. Chosen numbers are checked too: the help's example
    ``BANDS=2,1`` copied onto a VV, VH stack made a map of 4.1 % water (IoU 0.09) of the India chip, 47.8 %
    water, without a word. ``values``: (C, ...) backscatter in dB, linear power or amplitude (each keeps the
    order of the medians) in the model's band order ``wanted``."""
    if "VV" not in wanted or "VH" not in wanted:
        return
    indices = choice.indices
    vv, vh = wanted.index("VV"), wanted.index("VH")
    medians = [
        np.median(_finite_sample(values[i])) if np.isfinite(values[i]).any() else np.nan for i in (vv, vh)
    ]
    if not medians[0] < medians[1]:
        return
    swapped = list(indices)
    swapped[vv], swapped[vh] = indices[vh], indices[vv]
    taken = {"chosen": "chosen", "descriptions": "described"}.get(choice.basis, "taken")
    raise InputError(
        f"{source}: band {indices[vv]}, {taken} as VV, has a median of {medians[0]:.3g}, below band "
        f"{indices[vh]}, {taken} as VH ({medians[1]:.3g}). VH is darker than VV on nearly all ground "
        f"(4.9 to 14.8 dB darker on every Sentinel-1 scene this was checked on), so "
        + _swap_advice(choice.basis, swapped, wanted, source)
    )


def _swap_advice(basis: str, swapped: list[int], wanted: list[str], source: str) -> str:
    """What to do about bands that look swapped, by what their choice rested on (``BandChoice.basis``)."""
    if basis == "chosen":
        return f"the chosen numbers look swapped: choose {','.join(map(str, swapped))}"
    if basis == "descriptions":
        renames = "; ".join(
            f"d.GetRasterBand({index}).SetDescription('{name}')"
            for index, name in zip(swapped, wanted, strict=True)
        )
        return (
            "the raster's band descriptions look swapped: correct them, for instance in its folder with "
            f"python3 -c \"from osgeo import gdal; d = gdal.Open('{source}', gdal.GA_Update); {renames}\""
        )
    return (
        f"the bands look swapped: choose the band numbers in the model's order ({', '.join(wanted)}), here "
        f"{','.join(map(str, swapped))}, or name the bands in the file"
    )


def _decibels(values: np.ndarray, factor: float) -> np.ndarray:
    """``factor`` log10 of non-negative ``values`` (float32), at least ``POWER_FLOOR_DB`` (zeros and below
    included); NaN kept."""
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(divide="ignore"):
        db = factor * np.log10(np.maximum(values, 0.0))  # 0 and below: -inf; np.maximum keeps NaN
    return np.maximum(db, POWER_FLOOR_DB).astype(np.float32)


def linear_to_db(values: np.ndarray) -> np.ndarray:
    """10 log10 of linear power (float32), at least ``POWER_FLOOR_DB`` (zeros included); NaN kept."""
    return _decibels(values, 10.0)


def to_db(values: np.ndarray, scale: str) -> np.ndarray:
    """``values`` in ``scale`` ("db", "linear" power, "amplitude": 20 log10) as dB (float32)."""
    if scale == "db":
        return np.asarray(values, dtype=np.float32)
    if scale == "linear":
        return linear_to_db(values)
    if scale == "amplitude":
        return _decibels(values, 20.0)
    raise InputError(f"input scale must be one of {INPUT_SCALES[1:]}, not {scale!r}")


def mask_zero_fill(values: np.ndarray) -> float:
    """Set to NaN, in place, the pixels of SAR ``values`` (C, H, W) that are 0 in every band, when some but
    not all valid pixels are, and return their share: the fill of Sentinel-1 products' borders, which exports
    often leave without a nodata value. Taken for linear power it would read as the darkest water; kept in
    dB it is bright valid ground. 0 when there is none, or when every valid pixel is 0 (left
    as it is: ``check_not_all_zero`` names that)."""
    valid = np.isfinite(values).all(axis=0)
    zero = valid & (values == 0).all(axis=0)
    if not zero.any() or zero.sum() == valid.sum():
        return 0.0
    values[:, zero] = np.nan
    return float(zero.mean())


def mask_impossible_values(values: np.ndarray) -> float:
    """Set to NaN, in place, the pixels of raw SAR ``values`` (C, H, W, float) with a band below
    ``FILL_BELOW``, and return their share (0 when there is none)."""
    with np.errstate(invalid="ignore"):
        impossible = (values < FILL_BELOW).any(axis=0)
    if not impossible.any():
        return 0.0
    values[:, impossible] = np.nan
    return float(impossible.mean())


def impossible_values_note(share: float) -> str:
    """What the log says when ``share`` of the raster was read as nodata by ``mask_impossible_values``."""
    return (
        f"{share:.1%} of the raster holds values below {FILL_BELOW:g}, which no SAR backscatter takes "
        "(nodata the file does not declare, such as -9999): read as nodata; set the raster's nodata value if "
        "that is wrong"
    )


def mask_fills(values: np.ndarray) -> list[str]:
    """``mask_impossible_values``, then ``mask_zero_fill``, on SAR ``values`` (C, H, W) read whole
    (fine-tuning; the tiled reader measures them on a sample and masks every window); the log lines for what
    they masked (``fill_notes``)."""
    return fill_notes(mask_impossible_values(values), mask_zero_fill(values))


def fill_notes(impossible: float, zero: float) -> list[str]:
    """The log lines for the shares read as nodata by ``mask_impossible_values`` and ``mask_zero_fill``."""
    notes = (impossible, impossible_values_note), (zero, zero_fill_note)
    return [note(share) for share, note in notes if share]


def zero_fill_note(share: float) -> str:
    """What the log says when ``share`` of the raster was read as nodata by ``mask_zero_fill``."""
    return (
        f"{share:.0%} of the raster is 0 in every band: read as nodata (the fill of Sentinel-1 borders); "
        "set the raster's nodata value if that is wrong"
    )


def check_not_all_zero(values: np.ndarray, band_names: list[str] | None = None) -> None:
    """InputError when a band of (C, ...) ``values`` is 0 in every valid pixel: zeros that are nodata the file
    does not declare, or an empty band. Named as zeros: taken for linear power they would read -50 dB."""
    values = np.asarray(values)
    bands = values.reshape(values.shape[0], -1)
    for name, band in zip(_band_names(len(bands), band_names), bands, strict=True):
        sample = _finite_sample(band)
        if sample.size and not sample.any():
            raise InputError(
                f"SAR {name} is 0 in every valid pixel: no backscatter to segment. Zeros mark nodata in many "
                "products: set 0 as the raster's nodata value, or check the band selection"
            )


def check_sar_db_range(values: np.ndarray, band_names: list[str] | None = None) -> None:
    """InputError when the bulk of ``values`` (C, ...) cannot be Sentinel-1 sigma0 in dB."""
    values = np.asarray(values)
    bands = values.reshape(values.shape[0], -1) if values.ndim > 1 else values[None]
    for name, band in zip(_band_names(len(bands), band_names), bands, strict=True):
        sample = _finite_sample(band)
        if sample.size == 0:
            raise InputError(f"SAR {name} has no valid pixel (all nodata or NaN)")
        low, high = np.percentile(sample, [1, 99])
        if low < DB_RANGE[0] or high > DB_RANGE[1]:
            raise InputError(
                f"SAR {name} values ({low:.3g} to {high:.3g} for the 1st-99th percentile) are not Sentinel-1 "
                f"sigma0 in dB (expected mostly within {DB_RANGE[0]:.0f} to {DB_RANGE[1]:.0f} dB); check the "
                "band selection and whether the input is linear power, amplitude or digital numbers"
                + _fill_hint(sample)
            )


def _fill_hint(sample: np.ndarray) -> str:
    """A hint when the lowest or highest value lies outside ``DB_RANGE`` and fills at least 1 % of the pixels
    (and 10 of them): an undeclared nodata value (-9999, -32768 ...)."""
    for value in (sample.min(), sample.max()):
        count = np.count_nonzero(sample == value)
        if not DB_RANGE[0] <= value <= DB_RANGE[1] and count >= max(0.01 * sample.size, 10):
            share = count / sample.size
            break
    else:
        return ""
    return (
        f"; {share:.0%} of the pixels hold the single value {value:.9g}: if it marks nodata, declare it as "
        'the raster\'s nodata value (Raster > Conversion > Translate, "Assign a specified nodata value")'
    )


def sar_scale(
    sample: np.ndarray,
    requested: str,
    band_names: list[str],
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> str:
    """The scale of the SAR ``sample`` (C, ...): ``requested`` or, for "auto", detected with ``TYPICAL_DB``
    for bands VV and VH, else the model's dB statistics; InputError when a band is all zeros, the scale cannot
    be told, or the values in dB are not plausible Sentinel-1 sigma0."""
    if requested not in INPUT_SCALES:
        raise InputError(f"input scale must be one of {INPUT_SCALES}, not {requested!r}")
    if mean is not None and std is not None:
        pairs = [TYPICAL_DB.get(name, (m, s)) for name, m, s in zip(band_names, mean, std, strict=True)]
        mean, std = [m for m, _ in pairs], [s for _, s in pairs]
    elif all(name in TYPICAL_DB for name in band_names):
        mean, std = ([TYPICAL_DB[name][i] for name in band_names] for i in (0, 1))
    check_not_all_zero(sample, band_names)
    _check_requested_scale(sample, requested)
    scale = detect_sar_scale(sample, mean, std) if requested == "auto" else requested
    check_sar_db_range(to_db(sample, scale), band_names)
    return scale
