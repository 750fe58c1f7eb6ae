"""Land-cover labels derived from Sentinel-2 reflectance by documented spectral rules.

Used to label the co-registered S1/S2 pairs that have no per-pixel reference (the bundled model's training
set). The rules are deliberately simple, readable and conservative: a pixel that no rule claims with
confidence, or that is cloud or snow, gets IGNORE_INDEX and does not train the network.

Input: bands B02, B03, B04, B08, B11, B12 as surface reflectance x 10000 (Sentinel-2 L2A), all on one grid.
For top-of-atmosphere L1C data pass ``level="L1C"``: a fixed typical path radiance is subtracted from the
visible bands first (a crude dark-object correction; the rules were set on L2A).

Indices: NDVI = (B08-B04)/(B08+B04), MNDWI = (B03-B11)/(B03+B11), NDBI = (B11-B08)/(B11+B08),
redness = B04/B02. Rules, applied in this order (first match wins):

| class | rule |
|---|---|
| ignore (cloud) | B02 > 1800 and B04 > 1800 (bright in all visible bands) |
| ignore (snow) | MNDWI > 0.4 and B03 > 1500 |
| water | MNDWI > 0.3 and NDVI < 0.1, or NDVI < 0 and B08 < 1200 and B11 < 800 |
| tree cover | NDVI >= 0.8 and B03 < 520 and B04 < 280 (dense, dark canopy: forest darker than grass) |
| low vegetation | NDVI >= 0.45 (and not tree cover) |
| ignore (mixed) | 0.3 <= NDVI < 0.45 (sparse vegetation: neither class with confidence) |
| built-up | NDVI < 0.3 and NDBI > -0.1 and redness < 1.3 (grey, spectrally flat roofs and pavements) |
| bare / sparse | NDVI < 0.3 and redness >= 1.3 (soil and rock are redder than man-made surfaces) |
| ignore | everything else |

The tree/low-vegetation thresholds were checked against the only per-pixel CORINE map in the samples
(BigEarthNet v2 patch T33UUP_26_57, see tests): forest pixels have median NDVI 0.90, B03 420, B04 206;
pastures NDVI 0.84, B03 659, B04 323; arable land NDVI 0.66, B03 827. Built-up versus bare soil is the weakest
rule (both are bright in SWIR); SAR separates them better (double bounce), which is one reason the student
can do better than these labels on built-up areas.
"""

from __future__ import annotations

import numpy as np

from hfd_core import IGNORE_INDEX

#: The bundled model's class scheme: (id, name, colour).
LAND_COVER_CLASSES: tuple[tuple[int, str, str], ...] = (
    (0, "water", "#2b7bb9"),
    (1, "built-up", "#d7301f"),
    (2, "tree cover", "#1a7f37"),
    (3, "low vegetation", "#a6d96a"),
    (4, "bare / sparse", "#d9c27a"),
)
WATER, BUILT_UP, TREE, LOW_VEGETATION, BARE = range(5)

#: Band order the rules expect.
RULE_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")

#: Typical top-of-atmosphere path radiance (reflectance x 10000) removed from L1C visible bands.
L1C_PATH_RADIANCE = {"B02": 900.0, "B03": 550.0, "B04": 300.0, "B08": 0.0, "B11": 0.0, "B12": 0.0}


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / b, np.nan)


#: Darkest-percentile B02 (reflectance x 10000) above which a scene is taken as L1C. At the 1st percentile the
#: samples' L1C scenes have 945-1198 (path radiance: Sen1Floods11, SEN12MS-CR, SSL4EO-S12), their L2A scenes
#: 86-215 (BigEarthNet) and 535-599 (arid Pakistan, SSL4EO-S12); one snowy 120-pixel L2A patch has 1147.
L1C_DARK_B02 = 750.0


def product_level(reflectance: np.ndarray) -> str:
    """The product level, "L1C" or "L2A", of a (6, H, W) array in RULE_BANDS order, from its darkest blue
    (``L1C_DARK_B02``): at the top of the atmosphere even water and shadow keep the path radiance."""
    blue = reflectance[RULE_BANDS.index("B02")]
    blue = blue[np.isfinite(blue) & (blue > 0)]
    return "L1C" if blue.size and np.percentile(blue, 1) > L1C_DARK_B02 else "L2A"


def _corrected_bands(reflectance: np.ndarray, level: str) -> tuple[np.ndarray, np.ndarray]:
    """(float32 bands with the L1C path radiance removed, mask of pixels valid in every band)."""
    if reflectance.ndim != 3 or reflectance.shape[0] != len(RULE_BANDS):
        raise ValueError(
            f"expected ({len(RULE_BANDS)}, H, W) reflectance in order {RULE_BANDS}, got {reflectance.shape}"
        )
    if level not in ("L2A", "L1C"):
        raise ValueError(f"level must be 'L2A' or 'L1C', got {level!r}")
    bands = reflectance.astype(np.float32)
    valid = np.all(np.isfinite(bands) & (bands > 0), axis=0)
    if level == "L1C":
        offsets = np.array([L1C_PATH_RADIANCE[b] for b in RULE_BANDS], np.float32)[:, None, None]
        bands = np.maximum(bands - offsets, 1.0)
    return bands, valid


def rule_labels(reflectance: np.ndarray, level: str = "L2A") -> tuple[np.ndarray, np.ndarray]:
    """(``spectral_labels``, ``cloud_or_snow``) of one array, its bands corrected once."""
    bands, valid = _corrected_bands(reflectance, level)
    b02, b03, b04, b08, b11, _b12 = bands
    ndvi = _ratio(b08 - b04, b08 + b04)
    mndwi = _ratio(b03 - b11, b03 + b11)
    ndbi = _ratio(b11 - b08, b11 + b08)
    redness = _ratio(b04, b02)
    cloud = (b02 > 1800) & (b04 > 1800)
    snow = (mndwi > 0.4) & (b03 > 1500)

    labels = np.full(b02.shape, IGNORE_INDEX, np.uint8)
    claimed = ~valid
    # Later rules never override earlier ones; "ignore" rules claim pixels without labelling them.
    rules = (
        (None, cloud),
        (None, snow),
        (WATER, ((mndwi > 0.3) & (ndvi < 0.1)) | ((ndvi < 0) & (b08 < 1200) & (b11 < 800))),
        (TREE, (ndvi >= 0.8) & (b03 < 520) & (b04 < 280)),
        (LOW_VEGETATION, ndvi >= 0.45),
        (None, ndvi >= 0.3),
        (BUILT_UP, (ndvi < 0.3) & (ndbi > -0.1) & (redness < 1.3)),
        (BARE, (ndvi < 0.3) & (redness >= 1.3)),
    )
    for class_id, condition in rules:
        hit = condition & ~claimed
        if class_id is not None:
            labels[hit] = class_id
        claimed |= hit
    return labels, valid & (cloud | snow)


def spectral_labels(reflectance: np.ndarray, level: str = "L2A") -> np.ndarray:
    """Class ids (uint8, IGNORE_INDEX where unsure) from a (6, H, W) array in RULE_BANDS order.

    Pixels with a non-finite or zero value in any band are IGNORE_INDEX.
    """
    return rule_labels(reflectance, level)[0]


def cloud_or_snow(reflectance: np.ndarray, level: str = "L2A") -> np.ndarray:
    """Valid pixels of a (6, H, W) array in RULE_BANDS order that the rules leave out as cloud or snow (their
    first two rules): there the EO does not show the ground the SAR sees."""
    return rule_labels(reflectance, level)[1]
