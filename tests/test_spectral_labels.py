"""Spectral labelling rules: each rule on hand-made pixels, and agreement with a real CORINE map."""

import numpy as np
import pytest
from test_finetune_fixtures import TEACHER_EO_BANDS

from hfd_core import IGNORE_INDEX
from hfd_core.data.spectral_labels import (
    BARE,
    BUILT_UP,
    LOW_VEGETATION,
    TREE,
    WATER,
    spectral_labels,
)

# B02, B03, B04, B08, B11, B12 (reflectance x 10000), typical L2A values.
PIXELS = {
    "water": ((600, 900, 500, 300, 200, 150), WATER),
    "forest": ((250, 420, 210, 3800, 1700, 780), TREE),
    "pasture": ((400, 680, 330, 3900, 1800, 820), LOW_VEGETATION),
    "roof": ((1100, 1200, 1300, 1800, 2200, 1900), BUILT_UP),
    "soil": ((700, 1000, 1400, 2000, 2800, 2300), BARE),
    "cloud": ((4000, 4100, 4200, 4500, 3000, 2500), IGNORE_INDEX),
    "snow": ((1800, 1900, 1700, 1600, 300, 200), IGNORE_INDEX),
    "sparse": ((600, 800, 900, 1900, 2200, 1600), IGNORE_INDEX),
}


@pytest.mark.parametrize("name", PIXELS)
def test_rule_for_typical_pixel(name):
    values, expected = PIXELS[name]
    image = np.array(values, np.float32)[:, None, None]
    assert spectral_labels(image)[0, 0] == expected


def test_invalid_pixels_and_shape():
    image = np.full((6, 2, 2), 500, np.float32)
    image[0, 0, 0] = np.nan
    image[3, 1, 1] = 0
    labels = spectral_labels(image)
    assert labels[0, 0] == IGNORE_INDEX and labels[1, 1] == IGNORE_INDEX
    with pytest.raises(ValueError):
        spectral_labels(np.zeros((4, 2, 2)))


def test_l1c_path_radiance_is_removed():
    forest_l2a = np.array(PIXELS["forest"][0], np.float32)[:, None, None]
    forest_l1c = forest_l2a + np.array([900, 550, 300, 0, 0, 0], np.float32)[:, None, None]
    assert spectral_labels(forest_l1c, level="L2A")[0, 0] != TREE
    assert spectral_labels(forest_l1c, level="L1C")[0, 0] == TREE


@pytest.mark.shared_data
def test_agrees_with_corine_reference_map(shared_data):
    """Tree cover vs low vegetation against the per-pixel CORINE map of BigEarthNet v2 patch T33UUP_26_57."""
    rasterio = pytest.importorskip("rasterio")
    patch = next((shared_data / "bigearthnet_v2" / "patches").glob("*T33UUP_26_57"))
    ten = np.load(patch / "s2_10m_B02_B03_B04_B08.npy").astype(np.float32)
    twenty = np.load(patch / "s2_20m_B05_B06_B07_B8A_B11_B12.npy").astype(np.float32)
    swir = twenty[4:6].repeat(2, axis=1).repeat(2, axis=2)
    labels = spectral_labels(np.concatenate([ten, swir]))
    with rasterio.open(patch / "reference_map_CLC_from_rico-hdl.tif") as src:
        corine = src.read(1)
    reference = np.where(np.isin(corine, [311, 313]), TREE, LOW_VEGETATION)  # forests vs arable/pasture
    labelled = labels != IGNORE_INDEX
    assert labelled.mean() > 0.9
    agreement = (labels[labelled] == reference[labelled]).mean()
    assert agreement > 0.8, agreement


@pytest.mark.shared_data
def test_product_level_tells_top_of_atmosphere_from_surface_reflectance(shared_data):
    from hfd_core.data.bundled import read_bigearthnet_v2
    from hfd_core.data.raster import read_float
    from hfd_core.data.spectral_labels import product_level

    india_l1c = read_float(shared_data / "sen1floods11" / "India_900498_S2Hand.tif", TEACHER_EO_BANDS)
    assert product_level(india_l1c) == "L1C"
    patches_l2a = read_bigearthnet_v2(shared_data / "bigearthnet_v2")
    assert [product_level(scene.eo) for scene in patches_l2a] == ["L2A"] * len(patches_l2a)
    assert product_level(np.full_like(india_l1c, np.nan)) == "L2A"  # nothing to tell by: the rules' default
    for level, folder in (("L2A", "s2a"), ("L1C", "s2c")):  # the same arid place, both levels, two dates
        for date in sorted((shared_data / "ssl4eo_s12" / folder).glob("*/*")):
            blue = read_float(date / "B2.tif", [1])[0]
            assert product_level(np.stack([blue] * 6)) == level, date  # only B02 decides


def test_cloud_or_snow_is_what_the_rules_leave_out_for_cloud_and_snow():
    from hfd_core.data.spectral_labels import cloud_or_snow

    names = list(PIXELS)
    image = np.stack([np.array(PIXELS[name][0], np.float32) for name in names], axis=1)[:, None, :]
    hidden = dict(zip(names, cloud_or_snow(image)[0], strict=True))
    assert hidden == {name: name in ("cloud", "snow") for name in names}  # "sparse" is unsure, not hidden
    image[:, 0, names.index("cloud")] = np.nan
    assert not cloud_or_snow(image)[0, names.index("cloud")]  # nodata is not cloud


@pytest.mark.shared_data
def test_cloud_or_snow_on_a_real_cloudy_top_of_atmosphere_image(shared_data):
    """SEN12MS-CR ROIs1970_fall_139_p839: the same place under cloud and cloud-free (L1C, another date)."""
    from hfd_core.data.raster import read_float
    from hfd_core.data.spectral_labels import cloud_or_snow

    folder = shared_data / "sen12ms_cr" / "glfcr"
    cloudy, clear = (
        read_float(folder / sky / "ROIs1970_fall_139_p839.tif", TEACHER_EO_BANDS)
        for sky in ("s2_cloudy", "s2_cloudfree")
    )
    hidden = cloud_or_snow(cloudy, "L1C")
    assert 0.2 < hidden.mean() < 0.4  # measured 0.27 of the chip
    assert (spectral_labels(cloudy, "L1C")[hidden] == IGNORE_INDEX).all()
    assert (cloudy[0] - clear[0])[hidden].min() > 500  # every pixel it hides is much brighter than clear sky
    assert cloud_or_snow(clear, "L1C").mean() < 0.001
