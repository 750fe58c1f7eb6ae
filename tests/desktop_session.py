"""Drives the real QGIS desktop (run by test_desktop.py with ``qgis --code``): not a test module itself.

With a raster as the active layer it opens the Processing dialogs that crashed QGIS 3.22 (Evaluate, Evaluate
in batch, fine-tune with a raster as labels), the plugin's fine-tuning dialog and the Segment dialog, runs
Segment and a batch Segment with the optional confidence left empty, and, when the Sen1Floods11 chip is there,
evaluates the bundled model's map against its water label in the one-class mode. Screenshots (``grab()``) and
``result.json`` go to ``$HFD_DESKTOP_OUT``. The session ends with exit code 0 once everything ran, 1 when a
step raised (the traceback is in result.json); a crash of QGIS gives a signal instead.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import rasterio
from qgis.core import QgsApplication, QgsProcessingFeedback, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QTextBrowser
from qgis.utils import iface, plugins

OUT = Path(os.environ["HFD_DESKTOP_OUT"])
SAMPLE = Path(os.environ["HFD_DESKTOP_SAMPLE"])
SHARED = Path(os.environ.get("HFD_SHARED_DATA", "/nonexistent"))
result: dict = {"steps": []}


class RecordingFeedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.lines.append(warning)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803
        self.lines.append(error)


def settle(milliseconds: int = 300) -> None:
    """Let Qt lay out and paint the widgets."""
    from qgis.PyQt.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec_()


def shot(widget, name: str) -> None:
    widget.show()
    settle()
    widget.grab().save(str(OUT / f"{name}.png"))
    result["steps"].append(name)


def add_raster(path: Path, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name)
    QgsProject.instance().addMapLayer(layer)
    return layer


def algorithm_dialog(algorithm_id: str, parameters: dict, name: str) -> None:
    from processing import createAlgorithmDialog

    dialog = createAlgorithmDialog(algorithm_id, parameters)
    shot(dialog, name)
    dialog.close()


def batch_dialog(algorithm_id: str, name: str):
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog

    algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
    dialog = BatchAlgorithmDialog(algorithm, iface.mainWindow())
    shot(dialog, name)
    return dialog


def open_output_probe() -> dict:
    """The Segment dialog as it opens after a run (its SAR layer) and the state of the "Open output file"
    boxes before and after a confidence path is typed."""
    from processing import createAlgorithmDialog
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest
    from qgis.PyQt.QtWidgets import QCheckBox, QLineEdit

    dialog = createAlgorithmDialog("hfd:segment", {})
    shot(dialog, "segment_dialog_default")
    panel = dialog.mainWidget()
    default_input = panel.wrappers["INPUT"].parameterValue()
    boxes = lambda: [b.isEnabled() for b in dialog.findChildren(QCheckBox) if "Open output" in b.text()]  # noqa: E731
    before = boxes()
    confidence = panel.wrappers["CONFIDENCE"].wrappedWidget()
    line = [e for e in confidence.findChildren(QLineEdit)][0]
    line.setFocus()
    QTest.keyClicks(line, str(OUT / "typed_confidence.tif"))
    QTest.keyClick(line, Qt.Key_Tab)
    settle()
    after = boxes()
    shot(dialog, "segment_dialog_confidence_typed")
    dialog.close()
    layer = QgsProject.instance().mapLayer(default_input) if isinstance(default_input, str) else default_input
    return {"default_input": layer.name() if layer else str(default_input), "before": before, "after": after}


def batch_segment_without_confidence(sar: QgsRasterLayer) -> list[str]:
    """One batch row as BatchAlgorithmDialog runs it (parametersForRow, run, handleAlgorithmResults)."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects

    dialog = batch_dialog("hfd:segment", "segment_batch_dialog")
    panel = dialog.mainWidget()
    column = panel.parameter_to_column["INPUT"]
    panel.wrappers[0][column].setParameterValue(sar.id(), dataobjects.createContext())
    panel.tblParameters.cellWidget(1, panel.parameter_to_column["OUTPUT"]).setValue(str(OUT / "batch.tif"))
    parameters, ok = panel.parametersForRow(0, destinationProject=QgsProject.instance(), warnOnInvalid=True)
    assert ok, "the batch row was refused"
    feedback = RecordingFeedback()
    context = dataobjects.createContext(feedback)
    algorithm = dialog.algorithm()
    results, ok = algorithm.run(parameters, context, feedback)
    assert ok, "\n".join(feedback.lines)
    handleAlgorithmResults(algorithm, context, feedback, False, parameters)
    dialog.close()
    return feedback.lines


def raster_menu_entries() -> dict[str, list[str]]:
    """The Raster menu's submenus and their entries."""
    entries = {}
    for action in iface.rasterMenu().actions():
        if action.menu() is not None:
            entries[action.text()] = [a.text() for a in action.menu().actions()]
    return entries


def evaluate_india() -> dict:
    """The bundled model's map of India_900498 against LabelHand: blind ids, then water against the rest."""
    import processing

    folder = SHARED / "sen1floods11"
    segmentation = str(OUT / "india_land_cover.tif")
    processing.run("hfd:segment", {"INPUT": str(folder / "India_900498_S1Hand.tif"), "OUTPUT": segmentation})
    label = str(folder / "India_900498_LabelHand.tif")
    blind_feedback = RecordingFeedback()
    base = {"PREDICTION": segmentation, "REFERENCE": label, "OUTPUT_CSV": str(OUT / "india.csv")}
    blind = processing.run(
        "hfd:evaluate", {**base, "OUTPUT_HTML": str(OUT / "india_blind.html")}, feedback=blind_feedback
    )
    water = processing.run(
        "hfd:evaluate",
        {**base, "ONE_CLASS": "water", "CLASS_MAPPING": "1: water", "OUTPUT_HTML": str(OUT / "india.html")},
    )
    browser = QTextBrowser()
    browser.setHtml((OUT / "india.html").read_text())
    browser.resize(700, 700)
    shot(browser, "evaluate_report_water")
    iou = [line for line in (OUT / "india.csv").read_text().splitlines() if line.startswith("0,water")]
    with rasterio.open(segmentation) as src, rasterio.open(label) as ref:
        predicted, truth = src.read(1), ref.read(1)
    scored = (truth != -1) & (predicted != 255)
    called, wet = (predicted == 0)[scored], (truth == 1)[scored]
    return {
        "blind_oa": blind["OA"],
        "blind_warned": any("do not look like" in line for line in blind_feedback.lines),
        "water_oa": water["OA"],
        "water_kappa": water["KAPPA"],
        "water_iou": float(iou[0].split(",")[2]),
        "counted_water_iou": float((called & wet).sum() / (called | wet).sum()),
        "counted_oa": float((called == wet).mean()),
    }


def main() -> None:
    import processing

    result["plugin_loaded"] = "hfd_qgis" in plugins
    sar = add_raster(SAMPLE, "s1_demo_vv_vh_db")
    iface.setActiveLayer(sar)
    outputs = processing.runAndLoadResults(
        "hfd:segment", {"INPUT": sar.id(), "OUTPUT": "TEMPORARY_OUTPUT", "CONFIDENCE": "TEMPORARY_OUTPUT"}
    )
    settle(1500)
    layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    result["loaded_layers"] = sorted(layers)
    result["layer_order"] = [node.name() for node in QgsProject.instance().layerTreeRoot().children()]
    result["active_after_segment"] = iface.activeLayer().name()
    result["open_output_probe"] = open_output_probe()
    shot(iface.mainWindow(), "desktop_segment_result")
    segmentation = layers["s1_demo_vv_vh_db land cover"]
    QgsProject.instance().layerTreeRoot().findLayer(segmentation.id()).setItemVisibilityChecked(False)
    settle(1000)
    shot(iface.mainWindow(), "desktop_confidence_layer")
    assert outputs["OUTPUT"]
    processing.runAndLoadResults(
        "hfd:segment",
        {
            "INPUT": sar.id(),
            "BUNDLED_MODEL": 1,
            "OUTPUT": "TEMPORARY_OUTPUT",
            "CONFIDENCE": "TEMPORARY_OUTPUT",
        },
    )
    settle(1500)
    tree = QgsProject.instance().layerTreeRoot()
    result["layer_order_after_water"] = [node.name() for node in tree.children()]
    result["legend_expanded"] = {node.name(): node.isExpanded() for node in tree.children()}
    shot(iface.mainWindow(), "desktop_second_run_on_top")
    iface.setActiveLayer(segmentation)  # a raster is the active layer: this crashed Evaluate in 3.22
    algorithm_dialog("hfd:evaluate", {}, "evaluate_dialog_default")
    algorithm_dialog(
        "hfd:evaluate",
        {"PREDICTION": segmentation.id(), "REFERENCE": sar.id(), "ONE_CLASS": "water"},
        "evaluate_dialog_raster_reference",
    )
    batch_dialog("hfd:evaluate", "evaluate_batch_dialog").close()
    algorithm_dialog("hfd:finetune", {}, "finetune_processing_dialog_default")
    algorithm_dialog(
        "hfd:finetune",
        {"SAR": sar.id(), "EO": sar.id(), "LABELS_RASTER": segmentation.id()},
        "finetune_processing_dialog_raster_labels",
    )
    result["batch_log"] = batch_segment_without_confidence(sar)
    result["raster_menu"] = raster_menu_entries()
    plugins["hfd_qgis"].show_segment_dialog()
    shot(plugins["hfd_qgis"].segment_dialog, "segment_dialog_from_menu")
    plugins["hfd_qgis"].segment_dialog.close()
    plugins["hfd_qgis"].show_finetune_dialog()
    shot(plugins["hfd_qgis"].finetune_dialog, "finetune_plugin_dialog")
    plugins["hfd_qgis"].finetune_dialog.close()
    if (SHARED / "sen1floods11" / "India_900498_S1Hand.tif").is_file():
        result["india"] = evaluate_india()


def run_and_quit() -> None:
    code = 0
    try:
        main()
        result["done"] = True
    except Exception:  # the test reads the traceback from result.json
        result["error"] = traceback.format_exc()
        code = 1
    (OUT / "result.json").write_text(json.dumps(result, indent=1))
    QgsProject.instance().setDirty(False)
    os._exit(code)  # no "save project?" question; a crash before this point exits with a signal


QTimer.singleShot(2000, run_and_quit)
