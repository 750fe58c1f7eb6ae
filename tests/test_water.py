"""The water model's inputs (scene context), its data, the classical thresholds and its path through
segment_raster."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from hfd_core import IGNORE_INDEX
from hfd_core.baselines import THRESHOLD_BASELINES, filtered_bounded_otsu_water, otsu_water
from hfd_core.data.raster import read_float
from hfd_core.data.scene_context import FEATURES, RASTER_BANDS, SCENE_KIND, SceneContext, water_features
from hfd_core.data.speckle import SPECKLE_HALO, mean_filter
from hfd_core.infer.tiled import segment_raster
from hfd_core.modelfile import ClassInfo, ModelFileError, ModelMetadata
from hfd_core.models import HFDNetConfig

CHANNEL = {name: index for index, name in enumerate(FEATURES)}


def _stretch_to_8bit(band: np.ndarray) -> np.ndarray:
    """What OMBRIA did to its SAR: a per-chip min-max stretch to 0..255."""
    low, high = np.nanmin(band), np.nanmax(band)
    return np.round((band - low) / (high - low) * 255).astype(np.float32)


def test_rank_channels_are_shared_by_db_and_stretched_8bit(demo_sample):
    vv = read_float(demo_sample)[:1]
    from_db = water_features(vv, SceneContext.of(vv, "db"))
    stretched = _stretch_to_8bit(vv)
    from_8bit = water_features(stretched, SceneContext.of(stretched, "stretched"))
    rank, margin = CHANNEL["VV_rank"], CHANNEL["VV_margin"]
    assert np.abs(from_db[rank] - from_8bit[rank]).mean() < 0.005  # 8-bit rounding only
    # Otsu is not rank-invariant, but a linear stretch keeps its split
    assert np.abs(from_db[margin] - from_8bit[margin]).mean() < 0.02
    assert from_db[CHANNEL["has_db"]].min() == 1 and from_8bit[CHANNEL["has_db"]].max() == 0
    assert from_8bit[CHANNEL["VV_db"]].max() == 0


def test_features_flag_missing_vh_and_keep_nodata():
    rng = np.random.default_rng(0)
    vv = rng.normal(-12, 3, (1, 32, 32)).astype(np.float32)
    vv[0, :4] = np.nan
    features = water_features(vv, SceneContext.of(vv, "db"))
    assert features.shape == (len(FEATURES), 32, 32)
    assert np.isnan(features[:, :4]).all() and np.isfinite(features[:, 4:]).all()
    assert (features[CHANNEL["has_vh"], 4:] == 0).all() and (features[CHANNEL["VH_rank"], 4:] == 0).all()
    ranks = features[CHANNEL["VV_rank"], 4:]
    assert 0 <= ranks.min() < 0.01 and 0.99 < ranks.max() <= 1
    # the margin is negative exactly below the scene's Otsu threshold
    threshold = SceneContext.of(vv, "db").vv.otsu()
    below = vv[0, 4:] < threshold - 0.1
    above = vv[0, 4:] > threshold + 0.1
    assert (features[CHANNEL["VV_margin"], 4:][below] < 0).all()
    assert (features[CHANNEL["VV_margin"], 4:][above] > 0).all()


def test_streamed_context_equals_the_whole_array(demo_sample):
    """Strips streamed with a speckle-filter halo count what the whole array counts, filtered VH included."""
    whole = SceneContext.of(read_float(demo_sample), "db")
    streamed = SceneContext.empty("db", has_vh=True)
    array = read_float(demo_sample)
    for row in range(0, array.shape[1], 100):
        start = max(0, row - SPECKLE_HALO)
        streamed.add(array[:, start : row + 100 + SPECKLE_HALO], rows=slice(row - start, row - start + 100))
    for name in ("vv", "vh", "vh_filtered"):
        assert (getattr(streamed, name).counts == getattr(whole, name).counts).all(), name


def test_filtered_bound_channel_is_the_classical_recipe(demo_sample):
    """Negative ``VH_filtered_bound`` is water for the filtered, bounded Otsu recipe the model is scored
    against (up to the context's 0.05 dB histogram bins)."""
    sar = read_float(demo_sample)
    sar[1, :40] -= 12.0  # a dark band so that the scene has "water" under the -18 dB limit
    channel = water_features(sar, SceneContext.of(sar, "db"))[CHANNEL["VH_filtered_bound"]]
    recipe = filtered_bounded_otsu_water(sar[1])
    assert 0.05 < recipe.mean() < 0.5
    assert ((channel < 0) == recipe).mean() > 0.995


def test_a_water_model_with_another_feature_set_is_refused():
    """A model made with the first feature set (unfiltered VH bound) must not get the new channel silently."""
    metadata = _water_metadata()
    metadata.bands = [*FEATURES[:-1], "VH_bound"]
    with pytest.raises(ModelFileError, match="older version"):
        metadata.validate()


class _DarkHalf(torch.nn.Module):
    """Pixel-wise stand-in network: water where the scene rank of VV is below one half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank = x[:, CHANNEL["VV_rank"]]
        return torch.stack([rank - 0.5, 0.5 - rank], dim=1)


def _water_metadata() -> ModelMetadata:
    return ModelMetadata(
        role="student", config=HFDNetConfig(len(FEATURES), 2), bands=list(FEATURES), input_kind=SCENE_KIND,
        mean=[0.0] * len(FEATURES), std=[1.0] * len(FEATURES),
        classes=[ClassInfo(0, "not water", "#d9d9d9"), ClassInfo(1, "water", "#2e86de")], tile_size=64,
    )  # fmt: skip


def test_segment_raster_reads_vv_vh_and_gives_every_tile_the_scene_context(demo_sample, tmp_path):
    """A scene-feature model reads the raster's two bands, and every tile gets the whole raster's histograms:
    a pixel-wise model then gives the same map whatever the tiling, with exactly the darker half as water."""
    metadata = _water_metadata()
    assert metadata.raster_bands == list(RASTER_BANDS)
    maps = []
    for tile, overlap in ((64, 16), (256, 0)):
        output = tmp_path / f"water_{tile}.tif"
        segment_raster(demo_sample, output, (_DarkHalf(), metadata), tile_size=tile, overlap=overlap)
        with rasterio.open(output) as src:
            maps.append(src.read(1))
    assert (maps[0] != IGNORE_INDEX).all()
    assert (maps[0] == maps[1]).all()
    assert (maps[0] == 1).mean() == pytest.approx(0.5, abs=0.01)


class _RecipeChannel(torch.nn.Module):
    """Pixel-wise stand-in network: water where the filtered, bounded Otsu channel is negative."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margin = x[:, CHANNEL["VH_filtered_bound"]]
        return torch.stack([margin, -margin], dim=1)


def test_every_tile_gets_the_whole_rasters_speckle_filtered_channel(demo_sample, tmp_path):
    """Tiles are read with a speckle-filter halo: with or without overlap, the map equals the channel computed
    on the whole array (no seams where a tile's filter would run out of neighbours)."""
    sar = read_float(demo_sample)
    whole = water_features(sar, SceneContext.of(sar, "db"))[CHANNEL["VH_filtered_bound"]] < 0
    assert 0.001 < whole.mean()
    for tile, overlap in ((64, 0), (96, 16)):
        output = tmp_path / f"recipe_{tile}.tif"
        segment_raster(
            demo_sample, output, (_RecipeChannel(), _water_metadata()), tile_size=tile, overlap=overlap
        )
        with rasterio.open(output) as src:
            assert (src.read(1) == whole).all(), (tile, overlap)
    # the run's summary sets the recipe's share of water beside the model's (read off the first pass's
    # histogram of the filtered VH: to a bin of 0.05 dB)
    result = segment_raster(demo_sample, tmp_path / "recipe.tif", (_RecipeChannel(), _water_metadata()))
    assert result.recipe_water_share == pytest.approx(whole.mean(), abs=0.002)
    assert f"would call {100 * result.recipe_water_share:.1f}% water" in result.summary()


def test_cancel_during_the_scene_context_pass(demo_sample, tmp_path, monkeypatch):
    """Cancel is honoured in the first pass over the raster (before its first strip is counted), and no output
    is left behind."""
    from hfd_core.errors import Canceled

    counted = []
    add = SceneContext.add
    monkeypatch.setattr(SceneContext, "add", lambda self, *a, **k: counted.append(1) or add(self, *a, **k))
    with pytest.raises(Canceled):
        segment_raster(
            demo_sample,
            tmp_path / "water.tif",
            (_RecipeChannel(), _water_metadata()),
            is_canceled=lambda: True,
        )
    assert not counted and not list(tmp_path.iterdir())


def test_bounded_otsu_keeps_a_dry_scene_drier_than_otsu(demo_sample):
    """The demo sample (SEN12MS, land) has no open water: Otsu splits its histogram anyway."""
    vv, vh = read_float(demo_sample)
    assert otsu_water(vh).mean() > 0.2
    assert filtered_bounded_otsu_water(vh).mean() < 0.05
    assert set(THRESHOLD_BASELINES) >= {"Otsu (VV)", "Otsu (VH)", "filtered bounded Otsu (VH)"}


def test_mean_filter_ignores_nan():
    band = np.full((9, 9), -20.0, np.float32)
    band[4, 4] = np.nan
    band[0, 0] = -10.0
    filtered = mean_filter(band, 3)
    assert np.isnan(filtered[4, 4]) and filtered[4, 3] == pytest.approx(-20.0)
    assert filtered[1, 1] == pytest.approx(-20.0 + 10.0 / 9)


@pytest.mark.shared_data
def test_ombria_water_labels_add_permanent_water_from_sentinel2(shared_data):
    from hfd_core.data.water import read_ombria_water

    root = shared_data / "ombria"
    official = read_ombria_water(root, "test", permanent_water=False)
    water = read_ombria_water(root, "test")
    flood = sum(int((s.label == 1).sum()) for s in official)
    added = sum(int(((w.label == 1) & (o.label == 0)).sum()) for w, o in zip(water, official, strict=True))
    ignored = sum(int((w.label == IGNORE_INDEX).sum()) for w in water)
    assert 0 < added < 0.2 * flood and 0 < ignored
    # the flood mask is never overruled
    assert all(((o.label == 1) <= (w.label == 1)).all() for w, o in zip(water, official, strict=True))
    assert water[0].sar.shape[0] == len(FEATURES) and water[0].sar[CHANNEL["has_db"]].max() == 0


def test_evaluate_gives_a_water_model_features_of_raw_ombria_and_db_scenes(demo_sample):
    """`evaluate --dataset ombria` (8-bit VV before/after) and dB data give the water model its features."""
    from hfd_core.data import Scene
    from hfd_core.train.evaluation import evaluate_scenes

    sar_db = read_float(demo_sample)
    label = (sar_db[0] < np.median(sar_db[0])).astype(np.uint8)
    stretched = np.stack([_stretch_to_8bit(sar_db[0])] * 2).astype(np.uint8)
    metadata = _water_metadata()
    ombria_like = Scene("o", "g", stretched, None, label, sar_bands=["VV_before", "VV_after"])
    db = Scene("d", "g", sar_db, None, label, sar_bands=["VV", "VH"])
    scores = [evaluate_scenes(_DarkHalf(), metadata, [scene], "cpu")["miou"] for scene in (ombria_like, db)]
    assert scores[0] > 0.95 and scores[1] > 0.95


def test_otsu_takes_one_bin_per_grey_level_on_8bit_images():
    """On whole numbers from 0 to 255 Otsu's threshold is the dark class's last grey level and water is at or
    below it, so two separated modes split exactly (with 256 float bins the threshold fell inside the dark
    mode's top bin and its top level was land). NaN and flat scenes are never water; whole numbers beyond 8
    bits take float bins (an int32 fill of -2**31 had asked for a 16 GiB histogram)."""
    from hfd_core.baselines import otsu_water

    rng = np.random.default_rng(1)
    image = np.where(np.arange(16) < 6, rng.integers(10, 60, (16, 16)), rng.integers(120, 200, (16, 16)))
    image = image.astype(np.float32)
    image[0, 0], image[0, 15] = 59, np.nan
    water = otsu_water(image)
    assert water[:, :6].all() and not water[:, 6:].any()
    assert not otsu_water(np.full((4, 4), 5.0)).any()
    assert not otsu_water(np.array([5.0, 5.0, -np.inf])).any()
    assert otsu_water(np.array([-(2.0**31), 0.0, 1.0, 2.0])).tolist() == [True, False, False, False]


def test_evaluating_a_water_model_scores_the_thresholds_on_the_same_pixels(demo_sample):
    """A water model's evaluation also scores the classical thresholds: all of them on dB VV + VH, Otsu
    alone on an 8-bit stretched image (no dB there); each is scored on the pixels the model is scored on."""
    from hfd_core.baselines import THRESHOLD_BASELINES, otsu_water
    from hfd_core.data import Scene
    from hfd_core.metrics import confusion_matrix, scores
    from hfd_core.train.evaluation import _scene_features, evaluate_scenes, predict_scene, threshold_maps

    sar_db = read_float(demo_sample)
    sar_db[:, :10] = np.nan
    label = (sar_db[0] < np.nanmedian(sar_db[0])).astype(np.uint8)
    stretched = np.nan_to_num(_stretch_to_8bit(sar_db[0]), nan=255).astype(np.uint8)[None]
    metadata = _water_metadata()
    db = Scene("d", "g", sar_db, None, label, sar_bands=["VV", "VH"])
    ombria_like = Scene("o", "g", stretched, None, label, sar_bands=["VV_after"])
    for scene, methods in ((db, set(THRESHOLD_BASELINES)), (ombria_like, {"Otsu (VV)"})):
        maps = threshold_maps(scene)
        assert set(maps) == methods
        nodata = predict_scene(_DarkHalf(), metadata, scene, torch.device("cpu")) == IGNORE_INDEX
        assert nodata[:10].all() and not nodata[10:].any()
        assert all(np.array_equal(water == IGNORE_INDEX, nodata) for water in maps.values())
        report = evaluate_scenes(_DarkHalf(), metadata, [scene], "cpu")
        assert set(report["thresholds"]) == methods
        otsu = np.where(nodata, IGNORE_INDEX, otsu_water(np.where(nodata, np.nan, scene.sar[0])))
        expected = scores(confusion_matrix(otsu, label, 2))
        assert report["thresholds"]["Otsu (VV)"]["per_chip_miou"] == pytest.approx(expected["miou"])
    # scenes that hold the model's features already (`--dataset water`) have no raw SAR to threshold
    features = Scene("f", "g", _scene_features(db), None, label, sar_bands=list(FEATURES))
    assert "thresholds" not in evaluate_scenes(_DarkHalf(), metadata, [features], "cpu")


def test_an_undeclared_fill_value_is_nodata_not_backscatter(demo_sample, tmp_path):
    """-9999 in a thin border that the file does not declare as nodata is mapped as NaN would be: nodata
    there, the same classes elsewhere, and the log says so. Taken for backscatter, such a border (0.8 % of a
    Sen1Floods11 chip) had moved the water model's scene statistics enough to map 4 % of a flooded chip water
    instead of 99 %; here it made 5.5 % of this dry scene water instead of none."""
    from hfd_core.data.sar import impossible_values_note
    from hfd_core.modelfile import bundled_model_path

    with rasterio.open(demo_sample) as src:
        sar, profile = src.read().astype(np.float32), {**src.profile, "dtype": "float32", "nodata": None}
    maps = {}
    for fill in (np.nan, -9999.0):
        sar[:, :, :2] = fill  # 0.8 %: below the 1st percentile that the dB range check reads
        path = tmp_path / f"fill{fill}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(sar)
            dst.descriptions = ("VV", "VH")
        result = segment_raster(path, tmp_path / f"map{fill}.tif", bundled_model_path("water_student"))
        with rasterio.open(tmp_path / f"map{fill}.tif") as out:
            maps[fill] = out.read(1)
    assert (maps[-9999.0][:, :2] == IGNORE_INDEX).all()
    assert np.array_equal(maps[-9999.0], maps[np.nan])
    assert impossible_values_note(2 / sar.shape[2]) in result.warnings
    with rasterio.open(path, "r+") as declared:  # declared, it is the file's nodata: nothing to report
        declared.nodata = -9999.0
    result = segment_raster(path, tmp_path / "declared.tif", bundled_model_path("water_student"))
    assert not any("no SAR backscatter takes" in warning for warning in result.warnings)


def test_bundled_water_model_from_the_algorithm_and_the_cli(processing_provider, demo_sample, tmp_path):
    """hfd:segment's Bundled model "Water" (and `segment --bundled water`) use the shipped water model; the
    demo scene (SEN12MS land, no water body) stays dry, as the card's dry chips do."""
    import json

    import processing
    from recording_feedback import Feedback

    from hfd_core.cli import main
    from hfd_core.modelfile import bundled_model_path
    from hfd_qgis.segment_algorithm import WATER_HINT

    assert bundled_model_path("water_student").is_file()
    output, feedback = tmp_path / "water.tif", Feedback()
    parameters = {"INPUT": str(demo_sample), "BUNDLED_MODEL": 1, "OUTPUT": str(output)}
    processing.run("hfd:segment", parameters, feedback=feedback)
    assert WATER_HINT not in feedback.lines
    with rasterio.open(output) as src:
        classes = src.read(1)
        assert json.loads(src.tags()["CLASS_NAMES"]) == ["not water", "water"]
    assert (classes == 1).mean() < 0.01
    cli_output = tmp_path / "water_cli.tif"
    assert main(["segment", str(demo_sample), str(cli_output), "--bundled", "water"]) == 0
    with rasterio.open(cli_output) as src:
        assert (src.read(1) == classes).mean() > 0.999


def test_synthetic_open_water_is_dark_speckled_and_labelled(demo_sample):
    """Pasted into the real demo scene (dry land): the drawn share becomes water, dark in VV and far darker in
    VH, with GRD speckle; the land and the nodata are untouched."""
    from hfd_core.data.synthetic_water import ENL, WATER_SHARE, paste_open_water

    sar = read_float(demo_sample)
    sar[:, :8, :8] = np.nan
    label = np.zeros(sar.shape[1:], np.uint8)
    label[:8, :8] = IGNORE_INDEX
    for seed in range(5):
        pasted, labels = paste_open_water(sar, label, 1, np.random.default_rng(seed))
        water = labels == 1
        assert WATER_SHARE[0] - 0.01 <= water.mean() <= WATER_SHARE[1] + 0.01
        assert np.array_equal(pasted[:, ~water], sar[:, ~water], equal_nan=True)
        assert (labels[:8, :8] == IGNORE_INDEX).all() and np.isnan(pasted[:, :8, :8]).all()
        vv, vh = pasted[:, water]
        assert np.median(vh) < -20 and np.median(vh) < np.median(vv) - 4
        assert np.median(vv) < np.median(sar[0, ~np.isnan(sar[0])])
        # speckle: the intensity of a homogeneous patch has variance mean^2 / ENL (gamma distribution)
        intensity = 10 ** (vh / 10)
        smooth = 10 ** (mean_filter(np.where(water, pasted[1], np.nan), 7)[water] / 10)
        assert np.var(intensity / smooth) == pytest.approx(1 / ENL, rel=0.35)


@pytest.mark.shared_data
def test_synthetic_water_scenes_are_fixed_and_only_in_the_fine_tuning_set(shared_data):
    """The same water every time (drawn from the scene's name), one per paired scene with its group; the water
    fine-tuning set has them, the pre-training set does not."""
    from hfd_core.data.water import SYNTHETIC_SUFFIX, read_paired_water, read_synthetic_water
    from hfd_core.train.datasets import WATER_DATASETS

    first, again = read_synthetic_water(shared_data), read_synthetic_water(shared_data)
    paired = read_paired_water(shared_data)
    assert len(first) == len(paired) and all(SYNTHETIC_SUFFIX in s.name for s in first)
    assert all(np.array_equal(a.sar, b.sar, equal_nan=True) for a, b in zip(first, again, strict=True))
    assert [s.group for s in first] == [s.group for s in paired]
    share = np.mean([(s.label == 1).mean() for s in first])
    assert share > 0.3 > np.mean([(s.label == 1).mean() for s in paired])
    assert all(np.isnan(s.eo).all() for s in first)
    assert "synthetic" in WATER_DATASETS["water"] and "synthetic" not in WATER_DATASETS["water-no-chips"]
