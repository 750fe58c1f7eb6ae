"""hfd:finetune on the real India_900498 triplet: label-free, raster and polygon labels, errors, cancel."""

from __future__ import annotations

import pytest
from recording_feedback import Feedback
from test_finetune_fixtures import india_paths, tiny_models

from hfd_core.modelfile import read_metadata

COMMON = {"EPOCHS": 2, "TILE_SIZE": 64, "LEARNING_RATE": 0.01, "VALIDATION_FRACTION": 0.25, "DEVICE": 1}


@pytest.fixture(scope="module")
def india(shared_data):
    return india_paths(shared_data)


@pytest.fixture(scope="module")
def models(india, tmp_path_factory):
    return tiny_models(india, tmp_path_factory)


def _run(parameters: dict, feedback=None) -> tuple[dict, list[str]]:
    from qgis.core import QgsProcessingContext, QgsProject

    from hfd_qgis.finetune_algorithm import FinetuneAlgorithm

    algorithm = FinetuneAlgorithm().create()
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = feedback or Feedback()
    results, ok = algorithm.run(parameters, context, feedback)
    return (results if ok else None), feedback.lines


def _parameters(india, models, output, **extra) -> dict:
    return {
        "SAR": str(india["S1Hand"]),
        "EO": str(india["S2Hand"]),
        "BASE_MODEL": str(models["student"]),
        "TEACHER_MODEL": str(models["teacher"]),
        "OUTPUT_MODEL": str(output),
        **COMMON,
        **extra,
    }


def test_label_free_run_logs_epochs_and_before_after(qgis_app, india, models, tmp_path):
    results, log = _run(_parameters(india, models, tmp_path / "tuned.pt"))
    assert results["OUTPUT_MODEL"] == str(tmp_path / "tuned.pt")
    assert results["BEST_EPOCH"] in (1, 2)
    assert 0 <= results["VAL_MIOU_BEFORE"] <= 1 and 0 <= results["VAL_MIOU_AFTER"] <= 1
    assert any("label-free" in line for line in log)
    epochs = [line for line in log if line.startswith("epoch")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2"]
    score = "validation agreement with the teacher (mIoU)"  # one name in every line
    assert all(score in line for line in epochs)
    assert any(line.startswith(f"V{score[1:]} on the held-out blocks: base model") for line in log)
    assert read_metadata(tmp_path / "tuned.pt").training["fine_tuning"][-1]["labels"] is None


def test_nothing_held_out_says_so_instead_of_scoring_nan(qgis_app, india, models, tmp_path):
    """VALIDATION_FRACTION 0: the log said "on the held-out blocks: base model nan, fine-tuned nan"."""
    from hfd_qgis.finetune_algorithm import NOTHING_HELD_OUT

    parameters = _parameters(india, models, tmp_path / "tuned.pt", EPOCHS=1, VALIDATION_FRACTION=0)
    results, log = _run(parameters)
    assert results["OUTPUT_MODEL"] == str(tmp_path / "tuned.pt")
    assert NOTHING_HELD_OUT in log and not any("held-out blocks: base model" in line for line in log)


def test_comparison_warns_when_fine_tuning_lowers_the_score(qgis_app):
    from hfd_qgis.finetune_algorithm import comparison

    line, warning = comparison(0.3746, 0.3560, "validation mIoU")
    assert line == "Validation mIoU on the held-out blocks: base model 0.3746, fine-tuned 0.3560"
    assert "scores below the base model (0.3560 < 0.3746)" in warning
    assert comparison(0.3746, 0.3800, "validation mIoU")[1] is None


def test_polygon_labels_are_rasterised_on_the_sar_grid(qgis_app, india, models, tmp_path):
    import rasterio
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    with rasterio.open(india["S1Hand"]) as src:
        west, south, east, north = src.bounds
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=class:integer", "labels", "memory")
    middle = (west + east) / 2
    features = []
    for value, (x0, x1) in ((0, (west, middle)), (1, (middle, east))):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(
            QgsGeometry.fromWkt(
                f"POLYGON(({x0} {south},{x1} {south},{x1} {north},{x0} {north},{x0} {south}))"
            )
        )
        feature["class"] = value
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    parameters = _parameters(
        india, models, tmp_path / "tuned.pt", LABELS_VECTOR=layer, LABEL_FIELD="class", EPOCHS=1
    )
    results, log = _run(parameters)
    run = read_metadata(tmp_path / "tuned.pt").training["fine_tuning"][-1]
    assert run["validation"] == "labels" and run["labels"].endswith("_labels.tif")
    with rasterio.open(run["labels"]) as burnt, rasterio.open(india["S1Hand"]) as sar:
        assert burnt.shape == sar.shape and burnt.transform == sar.transform
        values = burnt.read(1)
    assert set(values[:, :200].ravel()) == {0} and set(values[:, -200:].ravel()) == {1}


def test_raster_labels(qgis_app, india, models, tmp_path):
    results, log = _run(
        _parameters(india, models, tmp_path / "tuned.pt", LABELS_RASTER=str(india["LabelHand"]), EPOCHS=1)
    )
    assert results is not None and any("Targets: labels" in line for line in log)


def test_labels_as_raster_and_polygons_at_once_are_refused(qgis_app, india, models, tmp_path):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=class:integer", "labels", "memory")
    parameters = _parameters(
        india, models, tmp_path / "t.pt", LABELS_RASTER=str(india["LabelHand"]), LABELS_VECTOR=layer
    )
    results, log = _run(parameters)
    assert results is None and any("not both" in line for line in log)


def test_cancel_keeps_the_best_epoch(qgis_app, india, models, tmp_path):
    results, log = _run(
        _parameters(india, models, tmp_path / "tuned.pt", EPOCHS=4), Feedback(cancel_on="epoch 1")
    )
    assert results["BEST_EPOCH"] == 1
    assert any(line.startswith("Cancelled: kept the best epoch so far (1)") for line in log)
    assert (tmp_path / "tuned.pt").is_file()


def test_bundled_models_are_not_overwritten(qgis_app, india, models):
    from hfd_qgis.paths import resources_dir

    results, log = _run(_parameters(india, models, resources_dir() / "models" / "student.pt"))
    assert results is None and any("bundled models are not overwritten" in line for line in log)


def test_eo_band_mismatch_is_a_clear_error(qgis_app, india, models, tmp_path):
    results, log = _run(_parameters(india, models, tmp_path / "tuned.pt", EO_BANDS="2,3,4"))
    assert results is None and any("bands" in line for line in log)


def test_sar_band_numbers_pick_vv_and_vh_from_a_stack_with_more_bands(qgis_app, india, models, tmp_path):
    """A SAR stack whose bands are not named (here VH/VV ratio, VV, VH) cannot be read automatically: the
    error says to choose the band numbers, and SAR_BANDS does so."""
    import numpy as np
    import rasterio

    with rasterio.open(india["S1Hand"]) as src:
        profile, (vv, vh) = src.profile, src.read()
    stack = tmp_path / "stack.tif"
    with rasterio.open(stack, "w", **{**profile, "count": 3}) as dst:
        dst.write(np.stack([vh - vv, vv, vh]))
    parameters = _parameters(india, models, tmp_path / "tuned.pt", SAR=str(stack), EPOCHS=1)
    results, log = _run(parameters)
    assert results is None and any("3 band(s)" in line and "choose the band numbers" in line for line in log)
    results, log = _run({**parameters, "SAR_BANDS": "2,3"})
    assert results["OUTPUT_MODEL"] == str(tmp_path / "tuned.pt")
