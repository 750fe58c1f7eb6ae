"""The water model's training and test scenes: every labelled real SAR pixel of the samples folder.

Sources (all mapped to two classes, 0 not water and 1 water, as ``scene_context.water_features`` inputs):

* ``ombria``: OMBRIA's after image (VV, 8-bit stretched per chip: rank channels only) with its Sentinel-2
  after image as EO. Its mask is a *flood* extent (permanent water is mostly 0), so "0" means "not flooded".
  Permanent water is added from the EO: pixels that the water rule (``eo_water_rule``) finds on both the
  before and the after Sentinel-2 image are water; pixels it finds on one date only and that are not flood are
  ignored (cloud, shadow or change: unknown). Checked on every 4th training chip: permanent-water pixels are
  darker in SAR than the flood pixels (median VV rank 0.17 vs 0.29; not-water 0.63), one-date pixels 0.24.
* ``paired``: the paired Sentinel-1 dB / Sentinel-2 scenes of the bundled land-cover set (BigEarthNet,
  SSL4EO-S12, SEN12MS-CR), water from their spectral rules or reference map; mostly dry land.
* ``chips``: the calibrated dB chips with hand-labelled water (Sen1Floods11 India, Sri Lanka, Spain, Ghana;
  STAC Overflow qxb32, awc00). India_900498 has Sentinel-2; the others have no EO (NaN: not distilled).
* ``synthetic``: each paired scene once more, with synthetic open water pasted into it
  (``synthetic_water``): water-rich dB scenes, which no real source has enough of. No EO (not distilled);
  same group as its paired scene, so a validation block takes both; named with ``SYNTHETIC_SUFFIX``.

The teacher's EO input is made of ratios and a rank so that OMBRIA's 8-bit false colour and reflectance
x 10000 mean the same (``eo_features``). Groups: OMBRIA blocks of 10 ids, one location per dB chip or tile.
``DB_WEIGHT`` raises the dB scenes' share of the random training windows (they are 3 MP beside OMBRIA's 41 MP,
and only they can teach the absolute dB channels).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from skimage.io import imread

from hfd_core import IGNORE_INDEX
from hfd_core.data.bundled import EO_BANDS as PAIRED_EO_BANDS
from hfd_core.data.bundled import SOURCES as PAIRED_SOURCES
from hfd_core.data.ombria import read_ombria, sar_with_nodata
from hfd_core.data.raster import read_float, read_label
from hfd_core.data.scene import Scene
from hfd_core.data.scene_context import FEATURES, SceneContext, water_features
from hfd_core.data.sen1floods11 import S2_BANDS as SEN1FLOODS11_S2_BANDS
from hfd_core.data.sen1floods11 import read_sen1floods11
from hfd_core.data.spectral_labels import WATER
from hfd_core.data.synthetic_water import paste_open_water

SOURCES = ("ombria", "paired", "chips", "synthetic")
SYNTHETIC_SUFFIX = "-synthetic-water"
EO_FEATURES = ("ND_B03_B08", "ND_B03_B11", "ND_B08_B11", "B08_rank")
DB_WEIGHT = 5.0
CONTEXT_CROP_MIN = 256
#: Groups of the dB water chips (``read_water_chips``): Sen1Floods11 regions and STAC Overflow chips.
CHIP_GROUP_PREFIXES = ("chip-", "stac-")
#: Water rule on 8-bit OMBRIA false colour (R = B11, G = B08, B = B03): green above NIR and SWIR, NIR dark.
OMBRIA_NIR_MAX = 80


def _normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((a - b) / (a + b)).astype(np.float32)


def eo_features(b03: np.ndarray, b08: np.ndarray, b11: np.ndarray) -> np.ndarray:
    """(4, H, W) teacher input: normalised differences of B03, B08, B11 (unchanged by a common gain) and the
    rank of B08 in the scene; NaN where a band is missing."""
    b03, b08, b11 = (np.asarray(b, np.float32) for b in (b03, b08, b11))
    finite = b08[np.isfinite(b08)]
    rank = np.full(b08.shape, np.nan, np.float32)
    if finite.size:
        ordered = np.sort(finite)
        rank = (np.searchsorted(ordered, b08) / ordered.size).astype(np.float32)
        rank[~np.isfinite(b08)] = np.nan
    eps = np.float32(1e-3)
    return np.stack(
        [_normalised_difference(b03 + eps, b08 + eps), _normalised_difference(b03 + eps, b11 + eps),
         _normalised_difference(b08 + eps, b11 + eps), rank]
    )  # fmt: skip


def eo_water_rule(false_colour: np.ndarray) -> np.ndarray:
    """Water on an 8-bit OMBRIA Sentinel-2 false colour (3, H, W) = (B11, B08, B03)."""
    b11, b08, b03 = (false_colour[i].astype(np.int32) for i in range(3))
    return (b03 > b08) & (b03 > b11) & (b08 < OMBRIA_NIR_MAX)


def _water_scenes(
    name: str, group: str, sar_db: np.ndarray, eo: np.ndarray | None, label: np.ndarray
) -> list[Scene]:
    """A dB scene (VV, VH) as water features, ``eo`` = (B03, B08, B11) or None; a scene of at least
    ``CONTEXT_CROP_MIN`` pixels a side also as its 2 x 2 crops, one of twice that size also as its 4 x 4
    crops, each crop with itself as scene context.

    Context crops show the network the same pixels under other scene statistics (on the water chips, crops
    range from dry to all water), so it learns when a pixel's rank and Otsu margin mislead and the absolute dB
    decides. The whole scene keeps half of the scene's sampling weight, each level of crops an equal share of
    the other half."""
    sar_db = sar_db.astype(np.float32)
    height, width = sar_db.shape[1:]
    eo_input = eo_features(*eo) if eo is not None else np.full((4, height, width), np.nan, np.float32)
    levels = [parts for parts in (2, 4) if min(height, width) >= CONTEXT_CROP_MIN * parts // 2]
    windows = [(slice(None), slice(None), DB_WEIGHT / (2 if levels else 1))]
    for parts in levels:
        rows = [slice(i * height // parts, (i + 1) * height // parts) for i in range(parts)]
        cols = [slice(i * width // parts, (i + 1) * width // parts) for i in range(parts)]
        windows += [(r, c, DB_WEIGHT / (2 * len(levels))) for r in rows for c in cols]
    scenes = []
    for index, (r, c, weight) in enumerate(windows):
        sar = sar_db[:, r, c]
        scenes.append(
            Scene(
                name=name if index == 0 else f"{name}-context{index}",
                group=group,
                sar=water_features(sar, SceneContext.of(sar, "db")),
                eo=eo_input[:, r, c],
                label=label[r, c].astype(np.uint8),
                sar_bands=list(FEATURES),
                eo_bands=list(EO_FEATURES),
                weight=weight,
            )
        )
    return scenes


def read_ombria_water(root: Path, split: str, permanent_water: bool = True) -> list[Scene]:
    """OMBRIA ``split`` as water scenes (see the module docstring for the labels); ``permanent_water=False``
    keeps the official flood mask as the label (to compare with published scores)."""
    scenes = []
    for chip in read_ombria(root, split, inputs="after"):
        number = chip.name.rsplit("-", 1)[1]
        label = chip.label.copy()
        eo = None
        if chip.eo is not None and permanent_water:
            after = eo_water_rule(chip.eo)
            before_path = Path(root) / "OmbriaS2" / split / "BEFORE" / f"S2_before_{number}.png"
            if before_path.is_file():
                before = eo_water_rule(np.moveaxis(imread(before_path)[..., :3], -1, 0))
                not_flood = label == 0
                label[not_flood & after & before] = 1
                label[not_flood & (after ^ before)] = IGNORE_INDEX
        if chip.eo is not None:
            b11, b08, b03 = chip.eo.astype(np.float32)
            eo = eo_features(b03, b08, b11)
        sar = sar_with_nodata(chip.sar)
        scenes.append(
            Scene(
                name=chip.name,
                group=chip.group,
                sar=water_features(sar, SceneContext.of(sar, "stretched")),
                eo=eo if eo is not None else np.full((4, *sar.shape[1:]), np.nan, np.float32),
                label=label,
                sar_bands=list(FEATURES),
                eo_bands=list(EO_FEATURES),
            )
        )
    return scenes


def _paired_db_scenes(root: Path) -> list[tuple[Scene, np.ndarray]]:
    """(scene, water label) of the bundled land-cover set's paired dB scenes (not Sen1Floods11: that is a
    water chip)."""
    pairs = []
    for folder, reader in PAIRED_SOURCES.items():
        if folder == "sen1floods11" or not (root / folder).is_dir():
            continue
        for scene in reader(root / folder):
            label = np.where(scene.label == WATER, 1, 0).astype(np.uint8)
            label[scene.label == IGNORE_INDEX] = IGNORE_INDEX
            pairs.append((scene, label))
    return pairs


def read_paired_water(root: Path) -> list[Scene]:
    """The paired dB scenes as water/not, with their Sentinel-2 as EO."""
    bands = [PAIRED_EO_BANDS.index(b) for b in ("B03", "B08", "B11")]
    scenes = []
    for scene, label in _paired_db_scenes(root):
        scenes += _water_scenes(scene.name, scene.group, scene.sar, scene.eo[bands], label)
    return scenes


def read_synthetic_water(root: Path) -> list[Scene]:
    """The paired dB scenes with synthetic open water pasted, the same water every time (drawn from the
    scene's name, not from the training seed)."""
    scenes = []
    for scene, label in _paired_db_scenes(root):
        rng = np.random.default_rng(zlib.crc32(scene.name.encode()))
        sar, label = paste_open_water(scene.sar, label, 1, rng)
        scenes += _water_scenes(scene.name + SYNTHETIC_SUFFIX, scene.group, sar, None, label)
    return scenes


def read_stac_chip(folder: Path, chip: str) -> tuple[np.ndarray, np.ndarray]:
    """(VV, VH dB with NaN nodata, label 0/1/IGNORE_INDEX) of a STAC Overflow chip (0 = missing there)."""
    sar = np.stack([read_float(folder / f"{chip}_{band}.tif")[0] for band in ("vv", "vh")])
    sar[:, (sar == 0).any(axis=0)] = np.nan
    return sar, read_label(folder / f"{chip}.tif", {0: 0, 1: 1})


def _stac_chip(folder: Path, chip: str) -> list[Scene]:
    sar, label = read_stac_chip(folder, chip)
    return _water_scenes(f"stac-{chip}", f"stac-{chip}", sar, None, label)


def read_water_chips(root: Path) -> list[Scene]:
    """The dB chips with hand-labelled water (Sen1Floods11 and STAC Overflow), one location each."""
    scenes = []
    s1f = root / "sen1floods11"
    if s1f.is_dir():
        bands = [SEN1FLOODS11_S2_BANDS.index(b) for b in ("B03", "B08", "B11")]
        for chip in read_sen1floods11(s1f):
            eo = chip.eo[bands] if chip.eo is not None else None
            if chip.label is not None:
                name, group = f"sen1floods11-{chip.name}", f"chip-{chip.group}"
                scenes += _water_scenes(name, group, chip.sar, eo, chip.label)
    stac = root / "stac_overflow"
    if stac.is_dir():
        for vv in sorted(stac.glob("*_vv.tif")):
            scenes += _stac_chip(stac, vv.name.removesuffix("_vv.tif"))
    return scenes


def read_water(root: str | Path, split: str, sources: Iterable[str] = SOURCES) -> list[Scene]:
    """Water scenes of ``sources`` under the samples folder ``root``. ``split`` "test" is OMBRIA's official
    test (the dB chips are scored by the model card, leave-out); "train" is every chosen source's training
    data."""
    root = Path(root)
    sources = tuple(sources)
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown water sources {sorted(unknown)}; known: {SOURCES}")
    ombria = root / "ombria"
    if split == "test":
        return read_ombria_water(ombria, "test")
    scenes = []
    if "ombria" in sources and (ombria / "OmbriaS1").is_dir():
        scenes += read_ombria_water(ombria, "train")
    if "paired" in sources:
        scenes += read_paired_water(root)
    if "synthetic" in sources:
        scenes += read_synthetic_water(root)
    if "chips" in sources:
        scenes += read_water_chips(root)
    return scenes
