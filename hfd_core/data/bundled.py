"""The bundled model's training set: every real co-registered Sentinel-1 / Sentinel-2 pair in the samples.

Reads the sample folder described in `shared/data/README.md` (layouts of BigEarthNet v1 and v2, SSL4EO-S12,
SEN12MS-CR and Sen1Floods11) into `Scene`s on the Sentinel-1 grid at 10 m:

* SAR: VV, VH sigma0 in dB.
* EO: Sentinel-2 B02, B03, B04, B08, B11, B12 as reflectance x 10000 (20 m bands resampled bilinearly).
* Labels (`spectral_labels.LAND_COVER_CLASSES`): a true per-pixel reference where one exists, else the
  documented spectral rules on the EO bands:
  - BigEarthNet v2 patch T33UUP_26_57: CORINE map (311/313 forest -> tree cover, 211/231 -> low vegetation);
  - Sen1Floods11 India_900498: hand-labelled water; its "not water" pixels take the spectral class unless
    that class is water (then ignored);
  - everything else: spectral rules (L2A or L1C as the product is).

Left out on purpose: chips with SAR but no Sentinel-2 (no teacher input), the cloudy-only SEN12MS-CR pair,
and the SpaceNet 6 airborne X-band SAR (not Sentinel-1). Groups are locations (tile, or a block of adjacent
BigEarthNet patches), and `BUNDLED_VALIDATION_GROUPS` are held out whole.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from hfd_core import IGNORE_INDEX
from hfd_core.data.scene import Scene
from hfd_core.data.spectral_labels import LOW_VEGETATION, RULE_BANDS, TREE, WATER, spectral_labels

log = logging.getLogger(__name__)

SAR_BANDS = ["VV", "VH"]
EO_BANDS = list(RULE_BANDS)
#: Locations held out for validation: one per source family where a source has several locations.
BUNDLED_VALIDATION_GROUPS = ("bigearthnet-29SND", "bigearthnet-T33UUP-r3c8", "sen12mscr-ROIs2017")
#: Band positions of RULE_BANDS in a 13-band L1C product
#: (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12).
L1C_13_BAND_INDEX = [1, 2, 3, 7, 11, 12]


def _labelled_scene(
    name: str, group: str, sar: np.ndarray, eo: np.ndarray, level: str, label: np.ndarray | None = None
) -> Scene:
    if label is None:
        label = spectral_labels(eo, level=level)
    return Scene(
        name=name,
        group=group,
        sar=sar.astype(np.float32),
        eo=eo.astype(np.float32),
        label=label.astype(np.uint8),
        sar_bands=list(SAR_BANDS),
        eo_bands=list(EO_BANDS),
    )


def _upsample2(band: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a 20 m band onto the 10 m grid (same extent)."""
    from skimage.transform import resize

    return resize(band.astype(np.float32), shape, order=1, preserve_range=True, anti_aliasing=False)


def _read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def read_bigearthnet_v1(root: Path) -> list[Scene]:
    scenes = []
    for s1_dir in sorted((root / "BigEarthNet-S1-Example").glob("S1*")):
        tile, row, col = re.search(r"_(\w{5})_(\d+)_(\d+)$", s1_dir.name).groups()
        s2_dir = next((root / "BigEarthNet-S2-Example").glob(f"S2*_{row}_{col}"))
        sar = np.stack([_read_band(next(s1_dir.glob(f"*_{b}.tif"))) for b in SAR_BANDS])
        shape = sar.shape[1:]
        eo = np.stack([_upsample2(_read_band(next(s2_dir.glob(f"*_{b}.tif"))), shape) for b in EO_BANDS])
        scenes.append(
            _labelled_scene(f"bigearthnet-{tile}-{row}_{col}", f"bigearthnet-{tile}", sar, eo, "L2A")
        )
    return scenes


def read_bigearthnet_v2(root: Path) -> list[Scene]:
    scenes = []
    for patch in sorted((root / "patches").glob("S2*")):
        tile, row, col = re.search(r"_T(\w{5})_(\d+)_(\d+)$", patch.name).groups()
        sar = np.load(patch / "s1_VV_VH_dB.npy")
        ten = np.load(patch / "s2_10m_B02_B03_B04_B08.npy")
        twenty = np.load(patch / "s2_20m_B05_B06_B07_B8A_B11_B12.npy")
        shape = ten.shape[1:]
        eo = np.concatenate([ten.astype(np.float32), np.stack([_upsample2(b, shape) for b in twenty[4:6]])])
        label = None
        corine = patch / "reference_map_CLC_from_rico-hdl.tif"
        if corine.is_file():
            codes = _read_band(corine)
            label = np.full(shape, IGNORE_INDEX, np.uint8)
            label[np.isin(codes, [311, 312, 313])] = TREE
            label[np.isin(codes, [211, 231])] = LOW_VEGETATION
        # Adjacent patches share a location: group them in blocks of 10 x 10 patches (12 km).
        group = f"bigearthnet-T{tile}-r{int(row) // 10}c{int(col) // 10}"
        scenes.append(_labelled_scene(f"bigearthnet-T{tile}-{row}_{col}", group, sar, eo, "L2A", label))
    return scenes


def _warp_onto(src_path: Path, grid: rasterio.io.DatasetReader) -> np.ndarray:
    destination = np.zeros((grid.height, grid.width), np.float32)
    with rasterio.open(src_path) as src:
        reproject(
            rasterio.band(src, 1),
            destination,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            resampling=Resampling.bilinear,
        )
    return destination


def read_ssl4eo(root: Path) -> list[Scene]:
    """Each S1 date paired with the S2 L2A date nearest in time, S2 warped onto the S1 grid."""
    scenes = []
    for location in sorted((root / "s1").iterdir()):
        s2_dates = sorted((root / "s2a" / location.name).iterdir())
        for s1_date in sorted(location.iterdir()):
            s1_day = int(re.search(r"_(\d{8})T", s1_date.name).group(1))
            s2_date = min(s2_dates, key=lambda d: abs(int(d.name[:8]) - s1_day))
            with rasterio.open(s1_date / "VV.tif") as grid:
                sar = np.stack([grid.read(1), _read_band(s1_date / "VH.tif")])
                eo = np.stack([_warp_onto(s2_date / f"B{int(b[1:])}.tif", grid) for b in EO_BANDS])
            scenes.append(
                _labelled_scene(f"ssl4eo-{location.name}-{s1_day}", f"ssl4eo-{location.name}", sar, eo, "L2A")
            )
    return scenes


def read_sen12ms_cr(root: Path) -> list[Scene]:
    scenes = []
    for s1_path in sorted((root / "glfcr" / "s1").glob("*.tif")):
        with rasterio.open(s1_path) as src:
            sar = src.read()
        with rasterio.open(root / "glfcr" / "s2_cloudfree" / s1_path.name) as src:
            eo = src.read([i + 1 for i in L1C_13_BAND_INDEX]).astype(np.float32)
        roi = s1_path.name.split("_")[0]
        scenes.append(_labelled_scene(f"sen12mscr-{s1_path.stem}", f"sen12mscr-{roi}", sar, eo, "L1C"))
    return scenes


def read_sen1floods11_pairs(root: Path) -> list[Scene]:
    scenes = []
    for s2_path in sorted(root.glob("*_S2Hand.tif")):
        stem = s2_path.name.removesuffix("_S2Hand.tif")
        with rasterio.open(root / f"{stem}_S1Hand.tif") as src:
            sar = src.read()
        with rasterio.open(s2_path) as src:
            eo = src.read([i + 1 for i in L1C_13_BAND_INDEX]).astype(np.float32)
        hand = _read_band(root / f"{stem}_LabelHand.tif")
        label = spectral_labels(eo, level="L1C")
        label[label == WATER] = IGNORE_INDEX
        label[hand == 1] = WATER
        label[hand == -1] = IGNORE_INDEX
        scenes.append(
            _labelled_scene(
                f"sen1floods11-{stem}", f"sen1floods11-{stem.split('_')[0]}", sar, eo, "L1C", label
            )
        )
    return scenes


SOURCES: dict[str, Callable[[Path], list[Scene]]] = {
    "bigearthnet_v1": read_bigearthnet_v1,
    "bigearthnet_v2": read_bigearthnet_v2,
    "ssl4eo_s12": read_ssl4eo,
    "sen12ms_cr": read_sen12ms_cr,
    "sen1floods11": read_sen1floods11_pairs,
}


def read_bundled_scenes(root: str | Path) -> list[Scene]:
    """All paired scenes under the samples folder `root` (sources that are absent are skipped)."""
    root = Path(root)
    scenes = []
    for folder, reader in SOURCES.items():
        if (root / folder).is_dir():
            scenes += reader(root / folder)
        else:
            log.warning("bundled training set: %s not found under %s, skipped", folder, root)
    if not scenes:
        raise FileNotFoundError(f"no paired Sentinel-1/Sentinel-2 samples found under {root}")
    return scenes


def split_bundled(scenes: list[Scene]) -> tuple[list[Scene], list[Scene]]:
    """Training and validation scenes: the validation locations are fixed (BUNDLED_VALIDATION_GROUPS)."""
    validation = [s for s in scenes if s.group in BUNDLED_VALIDATION_GROUPS]
    return [s for s in scenes if s.group not in BUNDLED_VALIDATION_GROUPS], validation


def read_bundled_split(root: str | Path, split: str) -> list[Scene]:
    """``split`` "train" (all but the validation locations) or "test" (the validation locations)."""
    train, validation = split_bundled(read_bundled_scenes(root))
    return train if split == "train" else validation
