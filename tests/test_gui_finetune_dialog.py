"""The fine-tuning dialog offscreen: pickers from the project, a run through QgsTask, cancel, screenshot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_finetune_fixtures import TEACHER_EO_BANDS, india_paths, tiny_models

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "test-output" / "finetune_dialog.png"
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def india(shared_data):
    return india_paths(shared_data)


@pytest.fixture(scope="module")
def models(india, tmp_path_factory):
    return tiny_models(india, tmp_path_factory)


@pytest.fixture
def dialog(qgis_iface, qgis_new_project, india, models, tmp_path):
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    from hfd_qgis.gui.finetune_dialog import FinetuneDialog

    project = QgsProject.instance()
    for name in ("S1Hand", "S2Hand"):
        project.addMapLayer(QgsRasterLayer(str(india[name]), name))
    project.addMapLayer(QgsVectorLayer("Polygon?crs=EPSG:4326&field=class:integer", "polygons", "memory"))
    project.addMapLayer(QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory"))
    widget = FinetuneDialog()
    widget.student_file.setFilePath(str(models["student"]))
    widget.teacher_file.setFilePath(str(models["teacher"]))
    widget.output_file.setFilePath(str(tmp_path / "tuned.pt"))
    widget.tile_size.setValue(64)
    widget.validation_fraction.setValue(0.25)
    widget.learning_rate.setValue(0.01)
    widget.device.setCurrentText("cpu")
    widget.sar_combo.setLayer(project.mapLayersByName("S1Hand")[0])
    widget.eo_combo.setLayer(project.mapLayersByName("S2Hand")[0])
    widget.show()
    yield widget
    widget.close()


def _wait_until(condition, timeout_s: float = TIMEOUT_S) -> bool:
    from qgis.core import QgsApplication

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        QgsApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def _layer_names(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count()) if combo.itemText(i)]


def test_pickers_are_filled_from_the_project(dialog):
    assert sorted(_layer_names(dialog.sar_combo)) == ["S1Hand", "S2Hand"]
    assert sorted(_layer_names(dialog.eo_combo)) == ["S1Hand", "S2Hand"]
    assert sorted(_layer_names(dialog.labels_combo)) == ["S1Hand", "S2Hand", "polygons"]  # no points
    assert dialog.labels_combo.currentLayer() is None and not dialog.field_combo.isEnabled()
    from qgis.core import QgsProject

    dialog.labels_combo.setLayer(QgsProject.instance().mapLayersByName("polygons")[0])
    assert dialog.field_combo.isEnabled() and dialog.field_combo.currentField() == "class"


def test_a_short_run_completes_through_the_task(dialog, tmp_path):
    dialog.epochs.setValue(2)
    dialog.write("a previous run's line")
    dialog.start_button.click()
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    assert not any(box.isEnabled() for box in dialog.inputs)  # inputs locked while training
    assert "a previous run's line" not in dialog.log.toPlainText()
    assert _wait_until(lambda: dialog.start_button.isEnabled()), "the task did not finish in time"
    log = dialog.log.toPlainText()
    assert "Finished; wrote the best epoch" in log, log
    assert len(dialog.chart.losses) == 2 and len(dialog.chart.scores) == 2
    assert dialog.progress.value() == 100 and dialog.segment_button.isEnabled()
    assert dialog.model_path == str(tmp_path / "tuned.pt") and Path(dialog.model_path).is_file()
    # a teacher with classes of its own (not the spectral rules'): its predictions are the only targets
    assert "on the teacher's predictions from the EO layer" in log
    score = "validation agreement with the teacher (mIoU)"  # label-free: one name in log, chart and result
    assert dialog.chart.score_label == score and f", {score} " in log
    assert f"V{score[1:]} on the held-out blocks: base model" in log
    assert "base model" in dialog.scores.text() and "fine-tuned" in dialog.scores.text()
    assert all(box.isEnabled() for box in dialog.inputs)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert dialog.grab().save(str(SCREENSHOT))


def test_the_runs_warnings_reach_the_log(dialog, monkeypatch):
    """Warnings of the run (an EO mostly under cloud, labels off the model's classes) reach the analyst."""
    import hfd_core.train.finetune as core

    finetune = core.finetune

    def warning_finetune(*args, callbacks, **kwargs):
        callbacks.on_warning("70 % of the EO layer over the SAR is cloud or snow")
        return finetune(*args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(core, "finetune", warning_finetune)
    dialog.epochs.setValue(1)
    dialog.start_button.click()
    assert _wait_until(lambda: dialog.start_button.isEnabled()), "the task did not finish in time"
    log = dialog.log.toPlainText()
    assert "Warning: 70 % of the EO layer over the SAR is cloud or snow" in log, log
    assert "Finished; wrote the best epoch" in log, log


def test_cancel_keeps_the_best_epoch(dialog, tmp_path):
    dialog.epochs.setValue(50)
    dialog.start_button.click()
    assert _wait_until(lambda: len(dialog.chart.losses) >= 1), "no epoch finished in time"
    dialog.cancel_button.click()
    assert _wait_until(lambda: dialog.start_button.isEnabled()), "the task did not stop in time"
    log = dialog.log.toPlainText()
    assert "Cancelled; kept the best epoch" in log, log
    assert len(dialog.chart.losses) < 50 and (tmp_path / "tuned.pt").is_file()
    assert dialog.progress.value() < 100 and dialog.progress.format().startswith("cancelled at")


def test_missing_output_is_reported_not_started(dialog):
    dialog.output_file.setFilePath("")
    dialog.start_button.click()
    assert dialog.task is None and "Cannot start: choose where to write" in dialog.log.toPlainText()


def test_sar_and_eo_start_on_different_layers(dialog):
    from hfd_qgis.gui.finetune_dialog import FinetuneDialog

    fresh = FinetuneDialog()  # the project has S1Hand (2 bands) and S2Hand (13 bands)
    assert fresh.sar_combo.currentLayer().name() == "S1Hand"
    assert fresh.eo_combo.currentLayer().name() == "S2Hand"
    fresh.close()


def test_teacher_map_button_segments_the_eo_layer_with_the_teacher(
    dialog, processing_provider, monkeypatch, tmp_path
):
    import processing

    opened = []
    monkeypatch.setattr(processing, "execAlgorithmDialog", lambda name, values: opened.append((name, values)))
    dialog.eo_bands.setText(", ".join(map(str, TEACHER_EO_BANDS)))
    dialog.teacher_button.click()  # before any run: the map to check first
    ((name, values),) = opened
    assert name == "hfd:segment" and values["INPUT"].name() == "S2Hand"
    assert values["MODEL"] == dialog.teacher_file.filePath() and values["BANDS"] == TEACHER_EO_BANDS
    output = tmp_path / "teacher_map.tif"
    result = processing.run("hfd:segment", {**values, "OUTPUT": str(output)})  # what the dialog would run
    assert Path(result["OUTPUT"]) == output and output.is_file()
    dialog.eo_bands.setText("2, three")
    dialog.teacher_button.click()
    assert len(opened) == 1 and "Cannot segment the EO layer: band numbers" in dialog.log.toPlainText()
    dialog.teacher_file.setFilePath("")
    dialog.teacher_button.click()
    assert len(opened) == 1 and "Choose an EO layer and a teacher model first" in dialog.log.toPlainText()


def test_help_and_close(dialog):
    from qgis.PyQt.QtWidgets import QDialogButtonBox

    dialog.dialog_buttons.button(QDialogButtonBox.Help).click()
    assert dialog.help_box.isVisible() and "README.md" in dialog.help_box.text()
    dialog.help_box.close()
    dialog.dialog_buttons.button(QDialogButtonBox.Close).click()
    assert not dialog.isVisible()


def test_a_torch_that_cannot_load_is_explained_not_started(dialog, monkeypatch):
    import hfd_qgis.gui.finetune_dialog as module

    message = "PyTorch cannot be loaded inside QGIS: it needs sympy>=1.13.3, but QGIS's Python finds 1.11.1"
    monkeypatch.setattr(module, "missing_dependency_message", lambda: message)
    dialog.start_button.click()
    assert dialog.task is None and f"Cannot start: {message}" in dialog.log.toPlainText()


def test_defaults_are_the_algorithms(qgis_iface):
    from hfd_core.finetune_defaults import DEFAULTS, TARGETS
    from hfd_qgis.gui.finetune_dialog import FinetuneDialog

    widget = FinetuneDialog()
    names = {"epochs": "epochs", "learning_rate": "lr", "distill_weight": "distill_weight"}
    names.update(tile_size="tile_size", validation_fraction="validation_fraction")
    for widget_name, default in names.items():
        assert getattr(widget, widget_name).value() == pytest.approx(getattr(DEFAULTS, default)), widget_name
    assert widget.targets.currentIndex() == TARGETS.index(DEFAULTS.targets)


def test_ranges_are_the_algorithms(qgis_iface):
    """The dialog and hfd:finetune accept the same values (``finetune_defaults.RANGES``)."""
    from hfd_core.finetune_defaults import RANGES
    from hfd_qgis.finetune_algorithm import FinetuneAlgorithm
    from hfd_qgis.gui.finetune_dialog import FinetuneDialog

    widget, algorithm = FinetuneDialog(), FinetuneAlgorithm().create()
    algorithm.initAlgorithm()
    for widget_name, parameter, setting in (
        ("epochs", "EPOCHS", "epochs"),
        ("learning_rate", "LEARNING_RATE", "lr"),
        ("distill_weight", "DISTILL_WEIGHT", "distill_weight"),
        ("tile_size", "TILE_SIZE", "tile_size"),
        ("validation_fraction", "VALIDATION_FRACTION", "validation_fraction"),
    ):
        spin, definition = getattr(widget, widget_name), algorithm.parameterDefinition(parameter)
        assert (spin.minimum(), spin.maximum()) == pytest.approx(RANGES[setting]), widget_name
        assert (definition.minimum(), definition.maximum()) == pytest.approx(RANGES[setting]), parameter
    widget.close()


def test_sar_band_numbers_go_to_the_run_and_to_the_segment_dialog(dialog, processing_provider, monkeypatch):
    import processing

    opened = []
    monkeypatch.setattr(processing, "execAlgorithmDialog", lambda name, values: opened.append((name, values)))
    dialog.sar_bands.setText("1, 2")
    assert dialog.arguments()["sar_bands"] == [1, 2]
    dialog.model_path = dialog.student_file.filePath()
    dialog.segment()
    ((name, values),) = opened
    assert name == "hfd:segment" and values["INPUT"].name() == "S1Hand" and values["BANDS"] == [1, 2]


def test_the_dialog_fits_a_laptop_screen(qgis_iface):
    """Laid out in full, the settings made the dialog at least 1071 pixels tall: on a 768- or 1080-pixel
    screen Start, Close and the log fell off it. The settings scroll instead."""
    from hfd_qgis.gui.finetune_dialog import FinetuneDialog

    widget = FinetuneDialog()
    assert widget.minimumSizeHint().height() <= 700
    widget.close()
