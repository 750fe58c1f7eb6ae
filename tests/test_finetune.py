"""Fine-tuning on a SAR + EO overlap (hfd_core.train.finetune), real Sen1Floods11 India_900498 triplet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject
from test_finetune_fixtures import FAST, india_paths, tiny_models

from hfd_core.data.raster import read_float
from hfd_core.errors import Canceled, InputError
from hfd_core.modelfile import load_model, read_metadata
from hfd_core.train.config import TrainCallbacks


@pytest.fixture(scope="module")
def india(shared_data):
    return india_paths(shared_data)


@pytest.fixture(scope="module")
def models(india, tmp_path_factory):
    return tiny_models(india, tmp_path_factory)


def _write_like(path: Path, source: Path, **changes) -> Path:
    with rasterio.open(source) as src:
        profile, data = src.profile, src.read()
    if "bands" in changes:
        data = data[np.array(changes.pop("bands")) - 1]
    profile.update(count=data.shape[0], **changes)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _with_cloud(source: Path, path: Path, windows: list[tuple[slice, slice]]) -> Path:
    """A copy of the EO raster ``source`` bright in every band (cloud) over ``windows`` (rows, columns)."""
    with rasterio.open(source) as src:
        profile, data = src.profile, src.read()
    for rows, cols in windows:
        data[:, rows, cols] = 5000
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _reproject_half(source: Path, path: Path, crs: str = "EPSG:3857") -> Path:
    """The left half of ``source`` reprojected to ``crs`` (another CRS, resolution and extent)."""
    with rasterio.open(source) as src:
        left = src.read(window=((0, src.height), (0, src.width // 2)))
        transform = src.transform
        width = src.width // 2
        bounds = rasterio.transform.array_bounds(src.height, width, transform)
        dst_transform, dst_w, dst_h = calculate_default_transform(src.crs, crs, width, src.height, *bounds)
        profile = {**src.profile, "crs": crs, "transform": dst_transform, "width": dst_w, "height": dst_h}
        out = np.zeros((src.count, dst_h, dst_w), left.dtype)
        reproject(
            left,
            out,
            src_transform=transform,
            src_crs=src.crs,
            dst_transform=dst_transform,
            dst_crs=crs,
            resampling=Resampling.bilinear,
            src_nodata=0,
            dst_nodata=0,
        )
    profile["nodata"] = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(out)
    return path


def _finetune(india, models, out: Path, **overrides):
    from hfd_core.train.finetune import finetune

    arguments = {**FAST, "validation_fraction": 0.25, "device": "cpu", **overrides}
    sar = arguments.pop("sar", india["S1Hand"])
    eo = arguments.pop("eo", india["S2Hand"])
    return finetune(sar, eo, out, models["student"], models["teacher"], **arguments)


def test_label_free_finetune_writes_a_student_with_its_history(india, models, tmp_path):
    epochs = []
    callbacks = TrainCallbacks(on_epoch_end=lambda epoch, values: epochs.append((epoch, values)))
    result = _finetune(india, models, tmp_path / "tuned.pt", callbacks=callbacks)
    assert result.label_free and not result.canceled
    assert [epoch for epoch, _ in epochs] == [1, 2]
    assert all(0 <= values["val_miou"] <= 1 for _, values in epochs)
    assert 0 <= result.base_metrics["val_miou"] <= 1
    model, metadata = load_model(tmp_path / "tuned.pt")
    assert metadata.role == "student" and metadata.bands == ["VV", "VH"]
    run = metadata.training["fine_tuning"][-1]
    assert run["from"] == str(models["student"]) and run["labels"] is None
    assert run["validation"] == "agreement with the teacher"
    assert run["before"]["val_miou"] == result.base_metrics["val_miou"]
    assert run["after"]["val_miou"] == result.best_metrics["val_miou"]
    # 512 x 512 chip in 64-pixel blocks: a quarter of the 64 blocks are held out
    assert result.validation_blocks == 16


def test_finetune_with_labels_validates_against_them(india, models, tmp_path):
    result = _finetune(india, models, tmp_path / "tuned.pt", label_path=india["LabelHand"], epochs=1)
    run = read_metadata(tmp_path / "tuned.pt").training["fine_tuning"][-1]
    assert not result.label_free
    assert run["labels"] == str(india["LabelHand"]) and run["validation"] == "labels"


def test_labels_numbered_otherwise_are_named_before_training(india, tmp_path):
    """`hfd:finetune` with Sen1Floods11's hand labels as they are (1 water, 0 not water) trained the bundled
    student to call water built-up (class 1), with only a warning about the -1 pixels. The base model's
    agreement with the labels says how they are numbered: warn with the reading it agrees with."""
    from hfd_core.train.finetune import renumbering_hint

    repo = Path(__file__).resolve().parents[1]
    models = {role: repo / "resources" / "models" / f"{role}.pt" for role in ("student", "teacher")}
    warnings = []
    callbacks = TrainCallbacks(on_warning=warnings.append)
    _finetune(
        india, models, tmp_path / "tuned.pt", label_path=india["LabelHand"], epochs=1, callbacks=callbacks
    )
    (hint,) = [w for w in warnings if "label ids read as" in w]
    assert "1 as water" in hint and "recode them to the model's ids (0 water, 1 built-up" in hint
    classes = ["water", "built-up", "tree cover"]  # confusion matrices: labels x the base model's classes
    fair = np.array([[80, 5, 15], [10, 60, 30], [5, 5, 90]])
    assert renumbering_hint(fair, classes) is None
    wrong_on_water = np.array([[10, 5, 85], [10, 60, 30], [5, 5, 90]])  # what fine-tuning is for
    assert renumbering_hint(wrong_on_water, classes) is None
    swapped = fair[[1, 0, 2]]  # labels 0 and 1 numbered the other way round
    assert "agrees with the labels on 35% of the held-out pixels, but on 77%" in renumbering_hint(
        swapped, classes
    )
    assert "read as 0 as built-up, 1 as water, 2 as tree cover" in renumbering_hint(swapped, classes)


def test_eo_in_another_crs_is_warped_onto_the_sar_grid_over_the_overlap_only(india, models, tmp_path):
    from hfd_core.train.finetune import prepare_scenes

    eo = _reproject_half(india["S2Hand"], tmp_path / "eo_3857.tif")
    student, teacher = read_metadata(models["student"]), read_metadata(models["teacher"])
    train, validation, _ = prepare_scenes(
        india["S1Hand"], eo, student, teacher, tile_size=64, validation_fraction=0.25
    )
    scene = train[0]
    assert scene.sar.shape[1] == 512 and 250 <= scene.sar.shape[2] <= 262  # left half of the SAR grid
    assert scene.eo.shape[1:] == scene.sar.shape[1:] and scene.eo_bands == teacher.bands
    with rasterio.open(india["S2Hand"]) as src:
        original = src.read(2, window=((100, 164), (100, 164))).astype(np.float32)
    warped = scene.eo[0, 100:164, 100:164]
    assert np.corrcoef(original.ravel(), warped.ravel())[0, 1] > 0.9
    result = _finetune(india, models, tmp_path / "tuned.pt", eo=eo, epochs=1)
    assert result.output_path.is_file()


def test_validation_blocks_are_held_out_squares(india, models):
    from hfd_core.train.finetune import prepare_scenes

    student, teacher = read_metadata(models["student"]), read_metadata(models["teacher"])
    train, validation, held_out = prepare_scenes(
        india["S1Hand"], india["S2Hand"], student, teacher, tile_size=128, validation_fraction=0.25
    )
    assert len(validation) == 4 and [size for *_, size in held_out] == [128] * 4
    for block in validation:
        assert block.sar.shape == (2, 128, 128) and block.eo.shape == (6, 128, 128)
        row, col = (int(v) for v in block.name.removeprefix("block-r").split("c"))
        assert np.isnan(train[0].sar[:, row : row + 128, col : col + 128]).all()
        assert (row, col, 128) in held_out  # the EO covers the whole SAR chip: overlap and raster agree
    assert np.isfinite(train[0].sar).all(axis=0).mean() > 0.7


def _prepared_without_nodata_value(sar: np.ndarray, india, models, tmp_path) -> tuple[list, list[str]]:
    """``prepare_scenes`` of ``sar`` written on India's grid with no nodata value, and what it warned of."""
    from hfd_core.train.finetune import prepare_scenes

    with rasterio.open(india["S1Hand"]) as src:
        profile = {**src.profile, "nodata": None, "dtype": "float32"}
    with rasterio.open(tmp_path / "sar.tif", "w", **profile) as dst:
        dst.write(sar)
    student, teacher = read_metadata(models["student"]), read_metadata(models["teacher"])
    said: list[str] = []
    train, _, _ = prepare_scenes(
        tmp_path / "sar.tif", india["S2Hand"], student, teacher, tile_size=128, warn=said.append
    )
    return train, said


def test_sar_zero_border_without_nodata_value_is_nodata(india, models, tmp_path):
    """A Sentinel-1 export in linear power whose border is 0 and declares no nodata value: the border is
    nodata (it would read -60 dB and have the raster refused as not dB), and the warning says so."""
    db = read_float(india["S1Hand"])
    power = np.where(np.isfinite(db), 10 ** (db / 10), 0).astype(np.float32)
    power[:, :, :64] = 0
    train, said = _prepared_without_nodata_value(power, india, models, tmp_path)
    assert any("of the raster is 0 in every band" in line for line in said), said
    assert np.isnan(train[0].sar[:, :, :64]).all()
    assert np.nanmedian(train[0].sar[0]) == pytest.approx(np.nanmedian(db[0, :, 64:]), abs=1.0)  # as dB


def test_sar_fill_value_without_nodata_value_is_nodata(india, models, tmp_path):
    """A dB export whose border holds -9999 and declares no nodata value: the border is nodata, not
    backscatter, and the warning says so."""
    from hfd_core.data.sar import impossible_values_note

    db = read_float(india["S1Hand"])
    db[:, :, :4] = -9999.0
    train, said = _prepared_without_nodata_value(db, india, models, tmp_path)
    assert impossible_values_note(4 / db.shape[2]) in said
    assert np.isnan(train[0].sar[:, :, :4]).all() and np.nanmin(train[0].sar) > -100


def test_eo_fill_value_without_nodata_value_is_nodata(india, models, tmp_path):
    """A Sentinel-2 export whose border holds -9999 without a declared nodata value: read as reflectance, it
    went to the teacher and became validation targets without a word; now it is nodata (outside the overlap),
    bilinear blending leaves no trace of it, and the warning says so."""
    from hfd_core.train.finetune import prepare_scenes

    with rasterio.open(india["S2Hand"]) as src:
        profile, eo = {**src.profile, "nodata": None, "dtype": "float32"}, src.read().astype(np.float32)
    eo[:, :, :16] = -9999.0
    with rasterio.open(tmp_path / "eo.tif", "w", **profile) as dst:
        dst.write(eo)
    student, teacher = read_metadata(models["student"]), read_metadata(models["teacher"])
    said: list[str] = []
    train, _, _ = prepare_scenes(
        india["S1Hand"], tmp_path / "eo.tif", student, teacher, tile_size=128, warn=said.append
    )
    assert any("of the EO raster over the SAR raster holds values below -1000" in line for line in said), said
    assert np.nanmin(train[0].eo) >= 0 and train[0].eo.shape[2] == eo.shape[2] - 16


def test_eo_that_does_not_overlap_is_refused(india, models, tmp_path):
    with rasterio.open(india["S2Hand"]) as src:
        moved = src.transform * Affine.translation(0, 0)
        moved = Affine(moved.a, moved.b, moved.c + 2.0, moved.d, moved.e, moved.f)
    eo = _write_like(tmp_path / "elsewhere.tif", india["S2Hand"], transform=moved)
    with pytest.raises(InputError, match="does not overlap"):
        _finetune(india, models, tmp_path / "tuned.pt", eo=eo)
    assert not (tmp_path / "tuned.pt").exists()


def test_eo_without_the_teacher_bands_is_refused(india, models, tmp_path):
    eo = _write_like(tmp_path / "rgbn.tif", india["S2Hand"], bands=[2, 3, 4, 8])
    with pytest.raises(InputError, match="bands"):
        _finetune(india, models, tmp_path / "tuned.pt", eo=eo)


def test_sar_and_eo_swapped_are_named_as_such(india, models, tmp_path):
    """The Sentinel-2 chip given as SAR was refused with "has 13 band(s); the model needs 2 (VV, VH). Name the
    bands in the file, or choose the band numbers": advice to pick 2 of 13 optical bands."""
    with pytest.raises(InputError, match="band count of a Sentinel-2 product; is it the optical input"):
        _finetune(india, models, tmp_path / "tuned.pt", sar=india["S2Hand"], eo=india["S1Hand"])
    assert not (tmp_path / "tuned.pt").exists()


def test_the_water_model_is_refused_as_base_with_the_reason(india, models, tmp_path):
    """The bundled water model reads the whole raster's statistics, which fine-tuning does not gather: it was
    refused as "2 bands, the model needs 9 (VV_rank, ...)"; now the error says what to do instead."""
    from hfd_core.modelfile import bundled_model_path

    water = {**models, "student": bundled_model_path("water_student")}
    with pytest.raises(InputError, match="is a water model.*fine-tune a land-cover student"):
        _finetune(india, water, tmp_path / "tuned.pt")
    assert not (tmp_path / "tuned.pt").exists()


def test_the_input_models_are_never_overwritten(india, models):
    with pytest.raises(InputError, match="overwrite"):
        _finetune(india, models, models["student"])


def test_cancel_keeps_the_best_epoch_so_far(india, models, tmp_path):
    finished = []
    callbacks = TrainCallbacks(
        on_epoch_end=lambda epoch, values: finished.append(epoch), should_stop=lambda: bool(finished)
    )
    result = _finetune(india, models, tmp_path / "tuned.pt", epochs=3, callbacks=callbacks)
    assert result.canceled and result.best_epoch == 1 and finished == [1]
    assert read_metadata(tmp_path / "tuned.pt").training["fine_tuning"][-1]["canceled"] is True


def test_cancel_before_any_epoch_writes_nothing(india, models, tmp_path):
    with pytest.raises(Canceled):
        _finetune(india, models, tmp_path / "tuned.pt", callbacks=TrainCallbacks(should_stop=lambda: True))
    assert not (tmp_path / "tuned.pt").exists()


def _land_cover_models(models: dict[str, Path], folder: Path) -> dict[str, Path]:
    """Untrained tiny teacher and student with the spectral rules' bands and classes (as the bundled ones)."""
    from hfd_core.data.spectral_labels import LAND_COVER_CLASSES
    from hfd_core.modelfile import ClassInfo, save_model
    from hfd_core.models import HFDNet

    paths = {}
    for role in ("teacher", "student"):
        metadata = read_metadata(models["teacher"] if role == "teacher" else models["student"])
        metadata.classes = [ClassInfo(*spec) for spec in LAND_COVER_CLASSES]
        metadata.config.num_classes = len(LAND_COVER_CLASSES)
        paths[role] = folder / f"land_cover_{role}.pt"
        save_model(paths[role], HFDNet(metadata.config), metadata)
    return paths


def test_label_free_targets_are_the_rules_only_for_a_teacher_that_fits_them(models, tmp_path):
    from hfd_core.modelfile import bundled_model_path
    from hfd_core.train.finetune import label_free_targets, planned_targets

    bundled = read_metadata(bundled_model_path("teacher"))
    assert label_free_targets(bundled) == "rules"  # the default, for the bundled teacher
    assert label_free_targets(bundled, "teacher") == "teacher"
    assert label_free_targets(read_metadata(models["teacher"])) == "teacher"  # two classes of its own
    assert planned_targets(models["teacher"], tmp_path / "labels.tif") == "labels"
    with pytest.raises(InputError, match="targets must be one of"):
        label_free_targets(bundled, "labels")


def test_rule_targets_take_the_rules_where_they_claim_a_pixel(india):
    from hfd_core import IGNORE_INDEX
    from hfd_core.data.spectral_labels import LOW_VEGETATION, spectral_labels
    from hfd_core.modelfile import bundled_model_path
    from hfd_core.train.finetune import _rule_targets, prepare_scenes

    student, teacher = (read_metadata(bundled_model_path(role)) for role in ("student", "teacher"))
    train, validation, _ = prepare_scenes(india["S1Hand"], india["S2Hand"], student, teacher)
    for scene in validation:  # as _teacher_targets leaves them: a class everywhere the SAR is valid
        valid = np.isfinite(scene.sar).all(axis=0)
        scene.label = np.where(valid, LOW_VEGETATION, IGNORE_INDEX).astype(np.uint8)
    assert _rule_targets(train, validation) == ("L1C", 0.0)  # S2Hand: top of atmosphere, cloud-free
    np.testing.assert_array_equal(train[0].label, spectral_labels(train[0].eo, "L1C"))
    block = validation[0]
    rules = spectral_labels(block.eo, "L1C")
    claimed = (rules != IGNORE_INDEX) & np.isfinite(block.sar).all(axis=0)
    assert claimed.any() and (~claimed & (block.label != IGNORE_INDEX)).any()
    np.testing.assert_array_equal(block.label[claimed], rules[claimed])
    assert (block.label[~claimed & np.isfinite(block.sar).all(axis=0)] == LOW_VEGETATION).all()


def test_rule_targets_leave_no_target_under_cloud(india):
    """Under cloud the EO does not see the ground the SAR sees: neither the rules nor the teacher may set the
    target there, and the feature distillation has nothing to pull toward (EO blanked)."""
    from hfd_core import IGNORE_INDEX
    from hfd_core.data.spectral_labels import LOW_VEGETATION
    from hfd_core.modelfile import bundled_model_path
    from hfd_core.train.finetune import _rule_targets, prepare_scenes

    student, teacher = (read_metadata(bundled_model_path(role)) for role in ("student", "teacher"))
    train, validation, _ = prepare_scenes(india["S1Hand"], india["S2Hand"], student, teacher)
    cloud = np.array([5000, 5000, 5000, 5200, 3500, 2800], np.float32)[:, None, None]  # bright, flat: L1C
    cloudy = (slice(0, 40), slice(0, 40))
    for scene in (train[0], *validation):
        scene.eo[(slice(None), *cloudy)] = cloud
        scene.label = np.where(np.isfinite(scene.sar).all(axis=0), LOW_VEGETATION, IGNORE_INDEX)
        scene.label = scene.label.astype(np.uint8)
    level, hidden = _rule_targets(train, validation)
    assert level == "L1C"
    valid = np.isfinite(train[0].sar).all(axis=0)
    assert hidden == pytest.approx(valid[cloudy].sum() / valid.sum())
    assert np.isnan(train[0].eo[(slice(None), *cloudy)]).all()
    assert (train[0].label[cloudy] == IGNORE_INDEX).all()
    assert np.isfinite(train[0].eo[:, 100:, 100:]).any()  # clear sky keeps its EO
    assert (validation[0].label[cloudy] == IGNORE_INDEX).all()
    assert (validation[0].label[40:, 40:] != IGNORE_INDEX).any()


def test_label_free_run_with_a_land_cover_teacher_trains_on_the_rules(india, models, tmp_path):
    land_cover = _land_cover_models(models, tmp_path)
    result = _finetune(india, land_cover, tmp_path / "tuned.pt", epochs=1)
    run = read_metadata(tmp_path / "tuned.pt").training["fine_tuning"][-1]
    assert result.label_free and result.targets == "rules"
    assert run["validation"] == "agreement with the rules" and run["targets"].startswith("spectral rules")
    teacher_only = _finetune(india, land_cover, tmp_path / "teacher_only.pt", epochs=1, targets="teacher")
    assert teacher_only.targets == "teacher"
    assert read_metadata(tmp_path / "teacher_only.pt").training["fine_tuning"][-1]["targets"] == (
        "teacher EO predictions"
    )


def test_rules_first_warns_when_most_of_the_eo_is_cloud(india, models, tmp_path):
    with rasterio.open(india["S2Hand"]) as src:
        left = slice(0, src.width * 3 // 5)  # cloud over the left three fifths
    cloudy = _with_cloud(india["S2Hand"], tmp_path / "cloudy_S2.tif", [(slice(None), left)])
    warnings = []
    callbacks = TrainCallbacks(on_warning=warnings.append)
    land_cover = _land_cover_models(models, tmp_path)
    result = _finetune(india, land_cover, tmp_path / "tuned.pt", epochs=1, eo=cloudy, callbacks=callbacks)
    assert result.targets == "rules"
    assert [w for w in warnings if "cloud or snow" in w and "a clearer EO image" in w], warnings
    clear = []
    _finetune(
        india, land_cover, tmp_path / "clear.pt", epochs=1, callbacks=TrainCallbacks(on_warning=clear.append)
    )
    assert not [w for w in clear if "cloud" in w], clear


def test_held_out_blocks_all_under_cloud_are_not_scored(india, models, tmp_path):
    """Validation blocks without any target (cloud, rules first) would make every epoch's score NaN: they stay
    held out, unscored, and the run keeps its epoch by the training loss."""
    from hfd_core.train.finetune import prepare_scenes

    land_cover = _land_cover_models(models, tmp_path)
    student, teacher = (read_metadata(land_cover[role]) for role in ("student", "teacher"))
    _, _, held_out = prepare_scenes(
        india["S1Hand"], india["S2Hand"], student, teacher, tile_size=FAST["tile_size"],
        validation_fraction=0.25,
    )  # fmt: skip
    blocks = [(slice(row, row + size), slice(col, col + size)) for row, col, size in held_out]
    cloudy = _with_cloud(india["S2Hand"], tmp_path / "cloudy_blocks_S2.tif", blocks)
    result = _finetune(india, land_cover, tmp_path / "tuned.pt", epochs=1, eo=cloudy)
    assert result.targets == "rules" and result.held_out == held_out
    assert result.base_metrics == {}
    assert "val_miou" not in read_metadata(tmp_path / "tuned.pt").metrics


def test_rules_first_refuses_an_eo_layer_that_is_all_cloud(india, models, tmp_path):
    from hfd_core.errors import InputError

    cloud = _with_cloud(india["S2Hand"], tmp_path / "all_cloud_S2.tif", [(slice(None), slice(None))])
    land_cover = _land_cover_models(models, tmp_path)
    with pytest.raises(InputError, match="cloud or snow wherever it overlaps the SAR"):
        _finetune(india, land_cover, tmp_path / "tuned.pt", epochs=1, eo=cloud)
    assert not (tmp_path / "tuned.pt").exists()
