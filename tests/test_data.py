"""Data layer: readers of the public layouts (real files and small files written here), tiles, SAR values."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from skimage.io import imsave

from hfd_core import IGNORE_INDEX
from hfd_core.data import (
    PairedTileDataset,
    Scene,
    read_ombria,
    read_sen1floods11,
    read_sen12ms,
    read_triplet_folder,
    read_whu_opt_sar,
    split_by_group,
)
from hfd_core.data.normalization import compute_band_stats, normalize
from hfd_core.data.sar import check_sar_db_range, detect_sar_scale, linear_to_db, sar_scale
from hfd_core.data.spectral_labels import TREE, WATER
from hfd_core.errors import InputError

UTM = CRS.from_epsg(32633)


def write_tif(path, array, transform=None, crs=UTM, nodata=None, descriptions=None):
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    profile = dict(
        driver="GTiff",
        width=array.shape[2],
        height=array.shape[1],
        count=array.shape[0],
        dtype=array.dtype,
        crs=crs,
        transform=transform or from_origin(500000, 5000000, 10, 10),
        nodata=nodata,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
        for index, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(index, text)
    return path


def db_image(rng, shape=(2, 32, 32)):
    return rng.normal(-15, 3, shape).astype(np.float32)


# --- SAR conventions and normalisation ---


def test_sar_scale_detection_and_conversion():
    rng = np.random.default_rng(0)
    db = db_image(rng)
    linear = 10 ** (db / 10)
    assert detect_sar_scale(db) == "db" and detect_sar_scale(linear) == "linear"
    assert np.allclose(linear_to_db(linear), db, atol=1e-4)
    converted = linear_to_db(np.array([np.nan, 0.0, 1.0], np.float32))
    assert np.isnan(converted[0]) and converted[1] == pytest.approx(-50.0) and converted[2] == 0.0
    with pytest.raises(InputError, match="no valid"):
        detect_sar_scale(np.full((2, 4, 4), np.nan))


def test_power_and_amplitude_told_with_typical_sentinel1_statistics_for_vv_and_vh():
    """A flooded scene (VH at -26 dB) as amplitude, with the narrow statistics of a model trained on dry
    scenes (the land-cover student of 2026-12-05): read against them it looks like power; VV and VH are read
    against typical Sentinel-1 statistics instead, other bands against the model's own."""
    rng = np.random.default_rng(0)
    db = np.stack([rng.normal(-11.0, 3.0, (64, 64)), rng.normal(-26.0, 2.0, (64, 64))])
    amplitude = 10 ** (db / 20)
    narrow = {"mean": [-10.84, -17.59], "std": [3.2, 3.27]}
    assert detect_sar_scale(amplitude, **narrow) == "linear"  # the misreading
    assert sar_scale(amplitude, "auto", ["VV", "VH"], **narrow) == "amplitude"
    assert sar_scale(amplitude, "auto", ["HH", "HV"], **narrow) == "linear"  # the model's own statistics


def test_db_range_check_names_an_undeclared_fill_value():
    """A dB raster whose border is -9999 without a declared nodata value: the refusal says which value
    fills how much of it and how to declare it."""
    sar = db_image(np.random.default_rng(0), (2, 64, 64))
    sar[:, :, :8] = -9999.0
    with pytest.raises(InputError, match=r"12% of the pixels hold the single value -9999: if it marks"):
        check_sar_db_range(sar, ["VV", "VH"])
    with pytest.raises(InputError) as refused:
        check_sar_db_range(np.random.default_rng(0).integers(0, 4000, (2, 8, 8)).astype(float), ["VV", "VH"])
    assert "single value" not in str(refused.value)


def test_db_range_check_refuses_digital_numbers():
    check_sar_db_range(db_image(np.random.default_rng(0)), ["VV", "VH"])
    with pytest.raises(InputError, match="VV.*not Sentinel-1"):
        check_sar_db_range(np.random.default_rng(0).integers(0, 4000, (2, 8, 8)).astype(float), ["VV", "VH"])


def test_band_stats_ignore_nan_and_normalize_zeroes_it():
    a = np.array([[[1.0, 3.0], [np.nan, 5.0]]], np.float32)
    stats = compute_band_stats([a, np.full((1, 1, 2), 3.0, np.float32)])
    assert stats.mean == pytest.approx([3.0]) and stats.std[0] > 0
    out = normalize(a, stats)
    assert out.dtype == np.float32 and out[0, 1, 0] == 0.0 and out[0, 0, 0] < 0 < out[0, 1, 1]


def test_split_by_group_keeps_locations_whole():
    scenes = [Scene(f"s{i}", f"g{i // 3}", np.zeros((1, 4, 4), np.float32), None, None) for i in range(12)]
    train, val = split_by_group(scenes, 0.25, seed=1)
    assert val and train and not {s.group for s in train} & {s.group for s in val}
    assert len(train) + len(val) == 12
    assert split_by_group(scenes, 0.25, seed=1) == (train, val)
    assert split_by_group(scenes, 0.0, seed=1) == (scenes, [])


# --- readers on small files in the public layouts ---


def test_class_polygons_are_burnt_onto_the_grid_and_bad_ids_refused(tmp_path):
    from hfd_core.data.raster import burn_classes

    grid = tmp_path / "grid.tif"
    profile = {"driver": "GTiff", "width": 4, "height": 3, "count": 2, "dtype": "float32"}
    profile |= {"crs": CRS.from_epsg(32633), "transform": from_origin(500, 30, 10, 10)}
    with rasterio.open(grid, "w", **profile) as d:
        d.write(np.zeros((2, 3, 4), np.float32))
    west = {"type": "Polygon", "coordinates": [[(500, 30), (520, 30), (520, 0), (500, 0), (500, 30)]]}
    corner = {"type": "Polygon", "coordinates": [[(510, 30), (520, 30), (520, 20), (510, 20), (510, 30)]]}
    east = {"type": "Polygon", "coordinates": [[(520, 30), (540, 30), (540, 0), (520, 0), (520, 30)]]}
    shapes = [(west, 2), (corner, 0), (east, -1)]  # -1: nodata, as in a raster of class ids
    out = burn_classes(shapes, grid, tmp_path / "labels.tif", "the test polygons")
    with rasterio.open(out) as src, rasterio.open(grid) as ref:
        assert src.transform == ref.transform and src.crs == ref.crs and src.nodata == IGNORE_INDEX
        burnt = src.read(1)
    assert burnt.tolist() == [[2, 0, IGNORE_INDEX, IGNORE_INDEX]] + [[2, 2, IGNORE_INDEX, IGNORE_INDEX]] * 2
    for bad in (255, 1.5):
        with pytest.raises(
            InputError, match=f"class id {bad:g} in the test polygons is not a whole number in 0..254"
        ):
            burn_classes([(west, bad)], grid, tmp_path / "bad.tif", "the test polygons")
    with pytest.raises(InputError, match="the test polygons has no polygon"):
        burn_classes([(east, -1)], grid, tmp_path / "none.tif", "the test polygons")
    assert not (tmp_path / "bad.tif").exists() and not (tmp_path / "none.tif").exists()


def test_sen1floods11_release_layout_and_broken_chips(tmp_path):
    rng = np.random.default_rng(0)
    for kind in ("S1Hand", "S2Hand", "LabelHand"):
        (tmp_path / kind).mkdir()
    write_tif(tmp_path / "S1Hand" / "Bolivia_1_S1Hand.tif", db_image(rng))
    write_tif(
        tmp_path / "S2Hand" / "Bolivia_1_S2Hand.tif", rng.integers(0, 3000, (13, 32, 32)).astype(np.uint16)
    )
    label = np.zeros((32, 32), np.int16)
    label[:8] = 1
    label[-4:] = -1
    write_tif(tmp_path / "LabelHand" / "Bolivia_1_LabelHand.tif", label)
    write_tif(tmp_path / "S1Hand" / "Bolivia_2_S1Hand.tif", np.full((2, 32, 32), np.nan, np.float32))
    write_tif(tmp_path / "LabelHand" / "Bolivia_2_LabelHand.tif", label)
    scenes = read_sen1floods11(tmp_path)
    assert [s.name for s in scenes] == ["Bolivia_1"]  # the all-NaN chip is skipped
    scene = scenes[0]
    assert scene.group == "Bolivia" and scene.eo.shape == (13, 32, 32) and len(scene.eo_bands) == 13
    assert (scene.label[:8] == 1).all() and (scene.label[-4:] == IGNORE_INDEX).all()
    assert set(np.unique(scene.label)) == {0, 1, IGNORE_INDEX}


@pytest.mark.shared_data
def test_sen1floods11_real_chips(shared_data):
    scenes = read_sen1floods11(shared_data / "sen1floods11")
    names = {s.name for s in scenes}
    assert "India_900498" in names
    assert "Paraguay_34417" not in names and "Ghana_83483" not in names  # all-NaN SAR, all-nodata label
    india = next(s for s in scenes if s.name == "India_900498")
    assert india.sar.shape == (2, 512, 512) and india.eo.shape == (13, 512, 512)
    assert 0.3 < np.mean(india.label == 1) < 0.6  # 47 % water per the data README


def test_sen12ms_and_dfc_labels(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "ROIs0000_winter" / "s1_7"
    folder.mkdir(parents=True)
    write_tif(folder / "ROIs0000_winter_s1_7_p1.tif", db_image(rng))
    write_tif(tmp_path / "ROIs0000_winter_s2_7_p1.tif", rng.integers(0, 3000, (13, 32, 32)).astype(np.uint16))
    lc = np.full((4, 32, 32), 10, np.uint8)
    lc[0, :, :16] = 17  # IGBP water
    write_tif(tmp_path / "ROIs0000_winter_lc_7_p1.tif", lc)
    write_tif(folder / "ROIs0000_winter_s1_7_p2.tif", db_image(rng))
    dfc = np.full((32, 32), 1, np.uint8)  # DFC2020 forest
    dfc[0] = 8  # snow: not mapped
    write_tif(tmp_path / "ROIs0000_winter_dfc_7_p2.tif", dfc)
    first, second = read_sen12ms(tmp_path)
    assert first.group == second.group == "ROIs0000_winter_7"
    assert first.eo.shape == (13, 32, 32) and second.eo is None
    assert (first.label[:, :16] == WATER).all() and (first.label[:, 16:] == 3).all()
    assert (second.label[1:] == TREE).all() and (second.label[0] == IGNORE_INDEX).all()


@pytest.mark.shared_data
def test_sen12ms_real_patch(shared_data):
    (scene,) = read_sen12ms(shared_data / "sen12ms")
    assert scene.sar.shape == (2, 256, 256) and scene.label.shape == (256, 256)
    assert np.isfinite(scene.sar).all() and (scene.label != IGNORE_INDEX).any()


def test_whu_opt_sar_layout(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("optical", "sar", "lab"):
        (tmp_path / folder).mkdir()
    write_tif(tmp_path / "sar" / "NH49E001013.tif", rng.integers(0, 255, (1, 16, 16)).astype(np.uint8))
    write_tif(tmp_path / "optical" / "NH49E001013.tif", rng.integers(0, 255, (4, 16, 16)).astype(np.uint8))
    label = np.full((16, 16), 40, np.uint8)  # water
    label[0] = 0  # unlabelled
    label[1] = 70
    write_tif(tmp_path / "lab" / "NH49E001013.tif", label)
    (scene,) = read_whu_opt_sar(tmp_path)
    assert scene.sar_bands == ["SAR"] and scene.eo_bands == ["R", "G", "B", "NIR"]
    assert (
        (scene.label[0] == IGNORE_INDEX).all()
        and (scene.label[1] == 6).all()
        and (scene.label[2:] == 3).all()
    )


def test_triplet_folder_warps_eo_and_label_onto_the_sar_grid(tmp_path):
    rng = np.random.default_rng(0)
    write_tif(tmp_path / "site__2021_sar.tif", db_image(rng, (2, 20, 20)))
    eo = np.zeros((3, 10, 10), np.float32)
    eo[:, :, 5:] = 1000.0  # east half bright, at 20 m
    write_tif(tmp_path / "site__2021_eo.tif", eo, transform=from_origin(500000, 5000000, 20, 20))
    label = np.zeros((20, 20), np.uint8)
    label[:, 10:] = 1
    write_tif(tmp_path / "site__2021_label.tif", label, nodata=255)
    write_tif(tmp_path / "site__2022_sar.tif", db_image(rng, (2, 20, 20)), descriptions=["HH", "HV"])
    first, second = read_triplet_folder(tmp_path)
    assert first.group == second.group == "site"
    assert first.sar_bands == ["VV", "VH"] and second.sar_bands == ["HH", "HV"]
    assert first.eo.shape == (3, 20, 20)
    assert (first.eo[:, :, :9] == 0).all() and (first.eo[:, :, 11:] == 1000).all()
    assert (first.label[:, 10:] == 1).all() and second.eo is None and second.label is None


def _write_ombria(root, split, ids):
    rng = np.random.default_rng(0)
    for sensor, bands in (("S1", 1), ("S2", 3)):
        for kind in ("BEFORE", "AFTER", "MASK"):
            folder = root / f"Ombria{sensor}" / split / kind
            folder.mkdir(parents=True)
            for chip in ids:
                if kind == "MASK":
                    image = np.zeros((16, 16), np.uint8)
                    image[:, :8] = 255
                else:
                    shape = (16, 16) if bands == 1 else (16, 16, 3)
                    image = rng.integers(0, 255, shape).astype(np.uint8)
                imsave(folder / f"{sensor}_{kind.lower()}_{chip}.png", image, check_contrast=False)


def test_ombria_layout_inputs_and_id_blocks(tmp_path):
    _write_ombria(tmp_path, "train", ["0001", "0002", "0015"])
    after = read_ombria(tmp_path, "train")
    both = read_ombria(tmp_path, "train", inputs="before_after")
    assert [s.name for s in after] == ["ombria-train-0001", "ombria-train-0002", "ombria-train-0015"]
    assert (
        after[0].sar.shape == (1, 16, 16)
        and after[0].eo.shape == (3, 16, 16)
        and after[0].sar.dtype == np.uint8
    )
    assert both[0].sar.shape == (2, 16, 16) and both[0].eo.shape == (6, 16, 16)
    assert (after[0].label[:, :8] == 1).all() and (after[0].label[:, 8:] == 0).all()
    assert after[0].group == after[1].group != after[2].group
    with pytest.raises(InputError, match="no OMBRIA test split"):
        read_ombria(tmp_path, "test")
    mask = tmp_path / "OmbriaS1" / "train" / "MASK" / "S1_mask_0002.png"
    imsave(mask, (after[1].label == 1).astype(np.uint8), check_contrast=False)  # 0 and 1, not 0 and 255
    assert np.array_equal(read_ombria(tmp_path, "train")[1].label, after[1].label)
    (tmp_path / "OmbriaS1" / "train" / "BEFORE" / "S1_before_0015.png").unlink()
    assert len(read_ombria(tmp_path, "train")) == 3
    with pytest.raises(InputError, match=r"S1_before_0015.png is missing.*--dataset ombria-after"):
        read_ombria(tmp_path, "train", inputs="before_after")


def test_ombria_chips_of_other_events_named_and_saved_their_own_way(tmp_path):
    """Chips made the OMBRIA way from other floods: any id, grey S1 saved as RGB; a colour S1 image and a mask
    of another size are refused by name (they had been read as three SAR bands, or failed in indexing)."""
    _write_ombria(tmp_path, "test", ["valencia-2024-07", "0012"])
    after = tmp_path / "OmbriaS1" / "test" / "AFTER"
    grey = read_ombria(tmp_path, "test")[1].sar[0]
    imsave(after / "S1_after_valencia-2024-07.png", np.stack([grey] * 3, -1), check_contrast=False)
    chips = read_ombria(tmp_path, "test")
    assert [s.group for s in chips] == ["ombria-test-block1", "ombria-test-valencia-2024-07"]
    assert chips[1].sar.shape == (1, 16, 16) and np.array_equal(chips[1].sar[0], grey)
    imsave(after / "S1_after_0012.png", np.stack([grey, grey, 255 - grey], -1), check_contrast=False)
    with pytest.raises(InputError, match="S1_after_0012.png is a colour image"):
        read_ombria(tmp_path, "test")
    imsave(after / "S1_after_0012.png", grey[:12], check_contrast=False)
    with pytest.raises(InputError, match=r"chip 0012's images differ in size \(S1_after_0012.png 16 x 12, "):
        read_ombria(tmp_path, "test")


@pytest.mark.shared_data
def test_ombria_official_splits(shared_data):
    train, test = read_ombria(shared_data / "ombria", "train"), read_ombria(shared_data / "ombria", "test")
    assert len(train) == 624 and len(test) == 70
    assert not {s.name.split("-")[-1] for s in train} & {s.name.split("-")[-1] for s in test}
    assert all(set(np.unique(s.label)) <= {0, 1, IGNORE_INDEX} for s in test)
    # the test chips whose SAR has a fill at the top (checked by eye): its whole rows, then a wedge along the
    # slanted swath edge (0018: 250, 194, 137, 81 and 24 pixels of 255 in the next rows), and nothing else
    rows = {s.name[-4:]: int((s.label == IGNORE_INDEX).all(axis=1).sum()) for s in test}
    pixels = {s.name[-4:]: int((s.label == IGNORE_INDEX).sum()) for s in test}
    assert {chip: n for chip, n in rows.items() if n} == {"0018": 5, "0019": 10, "0400": 38, "0723": 15}
    assert {chip: n for chip, n in pixels.items() if n} == {
        "0018": 1966,
        "0019": 3116,
        "0400": 10607,
        "0723": 4479,
    }
    chip = next(s for s in test if s.name.endswith("0018"))
    assert (chip.label[5:10] == IGNORE_INDEX).sum(axis=1).tolist() == [250, 194, 137, 81, 24]


def test_ombria_edge_fill_is_nodata_for_labels_the_water_model_and_otsu(tmp_path):
    """Fill at a chip's edges (255 rows on top, a constant column on the right, meeting at a corner) is
    nodata: label ignored, NaN for the water model, outside Otsu's histogram. The water model's features and
    Otsu's map of the rest equal those of the chip cut without the fill."""
    import importlib
    import sys
    from pathlib import Path

    from hfd_core.data.ombria import edge_fill, sar_with_nodata
    from hfd_core.data.scene_context import FEATURES
    from hfd_core.train.evaluation import _scene_features

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    baseline = importlib.import_module("ombria.baseline")
    _write_ombria(tmp_path, "train", ["0001"])
    folder = tmp_path / "OmbriaS1" / "train" / "AFTER"
    rng = np.random.default_rng(1)
    after = np.where(np.arange(16) < 6, rng.integers(10, 60, (16, 16)), rng.integers(120, 200, (16, 16)))
    after[:3], after[:, -1] = 255, 40
    imsave(folder / "S1_after_0001.png", after.astype(np.uint8), check_contrast=False)
    chip = read_ombria(tmp_path, "train")[0]
    fill = np.zeros((16, 16), bool)
    fill[:3], fill[:, -1] = True, True
    assert np.array_equal(edge_fill(chip.sar), fill)
    slanted = chip.sar.copy()
    slanted[0, 3, :2] = slanted[0, 9, 9] = 255  # the fill's slanted end; a pixel of its value apart
    wedge = np.zeros((16, 16), bool)
    wedge[3, :2] = True
    assert np.array_equal(edge_fill(slanted), fill | wedge)
    assert (chip.label[fill] == IGNORE_INDEX).all() and (chip.label[~fill] != IGNORE_INDEX).all()
    assert np.isnan(sar_with_nodata(chip.sar)[0][fill]).all()
    cut = Scene("cut", "g", chip.sar[:, 3:, :-1], None, chip.label[3:, :-1], sar_bands=["VV_after"])
    with_fill = _scene_features(chip)
    assert with_fill.shape[0] == len(FEATURES) and np.isnan(with_fill[:, fill]).all()
    assert np.allclose(with_fill[:, 3:, :-1], _scene_features(cut))
    assert np.array_equal(baseline.otsu_flood_map(chip.sar[0])[3:, :-1], baseline.otsu_flood_map(cut.sar[0]))
    otsu = baseline.otsu_flood_map(chip.sar[0])
    assert otsu[3:, :6].all() and not otsu[3:, 6:-1].any()


# --- paired tiles ---


def _pattern_scene(size=24, nan=False) -> Scene:
    """SAR, EO and label all encode the same asymmetric pattern, so alignment errors show."""
    yy, xx = np.mgrid[:size, :size]
    pattern = ((yy < size // 3) | (xx < size // 4)).astype(np.uint8)
    sar = np.stack([pattern * 10.0 - 20, pattern * 5.0 - 25]).astype(np.float32)
    if nan:
        sar[:, :4, -4:] = np.nan
    eo = np.stack([pattern * 1000.0] * 3).astype(np.float32)
    return Scene("p", "g", sar, eo, pattern.copy(), ["VV", "VH"], ["B02", "B03", "B04"])


def test_augmented_tiles_keep_sar_eo_and_label_aligned():
    scene = _pattern_scene(nan=True)
    sar_stats = compute_band_stats([scene.sar])
    eo_stats = compute_band_stats([scene.eo])
    tiles = PairedTileDataset(
        [scene], 16, sar_stats, eo_stats, mode="random", samples_per_epoch=30, augment=True
    )
    for index in range(len(tiles)):
        item = tiles[index]
        assert item["sar"].shape == (2, 16, 16) and item["eo"].shape == (3, 16, 16)
        valid = item["valid"].numpy()
        label = item["label"].numpy()
        assert (label[~valid] == IGNORE_INDEX).all() and (item["sar"].numpy()[:, ~valid] == 0).all()
        from_sar = (item["sar"][0].numpy() > 0).astype(np.int64)
        from_eo = (item["eo"][0].numpy() > 0).astype(np.int64)
        assert (from_sar[valid] == label[valid]).all() and (from_eo[valid] == label[valid]).all()


def test_random_tiles_are_reproducible_per_epoch_and_differ_between_epochs():
    scene = _pattern_scene(size=64)
    stats = compute_band_stats([scene.sar])
    tiles = PairedTileDataset([scene], 16, stats, mode="random", samples_per_epoch=8, augment=True, seed=3)
    tiles.set_epoch(1)
    first = [tiles[i]["sar"] for i in range(8)]
    tiles.set_epoch(2)
    second = [tiles[i]["sar"] for i in range(8)]
    tiles.set_epoch(1)
    again = [tiles[i]["sar"] for i in range(8)]
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert not all((a == b).all() for a, b in zip(first, second, strict=True))


def test_grid_tiles_cover_each_scene_once_with_padding_ignored():
    scene = _pattern_scene(size=24)
    tiles = PairedTileDataset([scene], 16, compute_band_stats([scene.sar]), mode="grid")
    assert len(tiles) == 4  # 24 px -> 2 x 2 windows of 16, the edge ones padded
    valid = sum(int(tiles[i]["valid"].sum()) for i in range(len(tiles)))
    assert valid == 24 * 24
    assert tiles[3]["eo"].shape == (0, 16, 16)  # no EO statistics: the EO is not read


def test_teacher_tiles_read_eo_only_and_scenes_without_labels_are_ignored():
    scene = _pattern_scene()
    scene.label = None
    tiles = PairedTileDataset([scene], 16, eo_stats=compute_band_stats([scene.eo]), mode="grid")
    item = tiles[0]
    assert item["sar"].shape == (0, 16, 16) and item["eo"].shape == (3, 16, 16)
    assert (item["label"] == IGNORE_INDEX).all()
