"""The fine-tuning dialog: layer pickers, parameters, Start/Cancel, progress, live chart and log.

Training runs as a ``FinetuneTask`` in QGIS's task manager, so closing (hiding) the dialog does not stop it;
the plugin keeps one dialog and shows it again. The inputs are locked while a run lasts. At the end the base
and fine-tuned models' validation scores stand side by side, with a warning when fine-tuning lowered it. When
a run ends with a model, "Segment with new model" opens ``hfd:segment`` for the chosen SAR layer and that
model. SAR and EO pickers start on different layers, chosen by band names and counts (``pick_sar_and_eo``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsFieldProxyModel,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from hfd_core.errors import HFDError, InputError
from hfd_core.finetune_defaults import DEFAULTS, RANGES, TARGETS
from hfd_qgis.common import DEVICES, bundled_model, parse_band_list
from hfd_qgis.dependencies import missing_dependency_message
from hfd_qgis.finetune_algorithm import (
    TARGET_CHOICES,
    TARGET_MESSAGES,
    FinetuneAlgorithm,
    check_output_model,
    comparison,
    epoch_line,
    score_name,
)
from hfd_qgis.gui.finetune_task import FinetuneTask
from hfd_qgis.gui.training_chart import TrainingChart
from hfd_qgis.label_layers import label_raster, raster_path

#: Band names that mark a layer as SAR (Sentinel-1 polarisations) or as EO (Sentinel-2 band names).
SAR_BANDS = ("VV", "VH", "HH", "HV")
EO_BANDS = ("B02", "B03", "B04", "B08", "B2", "B3", "B4", "B8")


def _band_names(layer: QgsRasterLayer) -> list[str]:
    return [layer.bandName(i).upper() for i in range(1, layer.bandCount() + 1)]


def pick_sar_and_eo(layers: list[QgsRasterLayer]) -> tuple[QgsRasterLayer | None, QgsRasterLayer | None]:
    """Default SAR and EO layers, never the same one: SAR is the first layer with polarisation band names,
    else with 2 bands (VV, VH); EO the first other layer with Sentinel-2 band names, else with 4 or more
    bands. None where no layer fits."""

    def first(candidates):
        return next(iter(candidates), None)

    sar = first(layer for layer in layers if any(b.endswith(SAR_BANDS) for b in _band_names(layer)))
    sar = sar or first(layer for layer in layers if layer.bandCount() == 2)
    others = [layer for layer in layers if layer is not sar]
    eo = first(layer for layer in others if any(b.endswith(EO_BANDS) for b in _band_names(layer)))
    return sar, eo or first(layer for layer in others if layer.bandCount() >= 4)


class FinetuneDialog(QDialog):
    """Fine-tune the SAR student on the analyst's area with an EO reference layer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune SAR model with EO reference")
        self.task: FinetuneTask | None = None
        self.model_path: str | None = None
        self._work = tempfile.TemporaryDirectory(prefix="hfd-dialog-")
        layout = QVBoxLayout(self)
        # the settings scroll, so the dialog fits a laptop screen: laid out in full they made it at least
        # 1071 pixels tall, and Start, Close and the log fell off a 768- or 1080-pixel screen
        settings = QWidget()
        settings_layout = QVBoxLayout(settings)
        settings_layout.setContentsMargins(0, 0, 0, 0)
        self.inputs = [self._inputs(), self._parameters()]
        for box in self.inputs:
            settings_layout.addWidget(box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(settings)
        scroll.setMinimumHeight(240)  # on a small screen the settings keep more room than the chart
        layout.addWidget(scroll, stretch=8)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.segment_button = QPushButton("Segment SAR layer with new model")
        self.teacher_button = QPushButton("Teacher's map of EO layer")
        self.teacher_button.setToolTip(
            "Segment the EO layer with the teacher: without labels, the student learns this map, errors "
            "included. Check it before fine-tuning; where it is wrong, give labels."
        )
        self.cancel_button.setEnabled(False)
        self.segment_button.setEnabled(False)
        buttons_in_order = (self.start_button, self.cancel_button, self.segment_button, self.teacher_button)
        for button in buttons_in_order:
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.chart = TrainingChart()
        self.chart.setMinimumHeight(120)
        layout.addWidget(self.chart, stretch=2)
        self.scores = QLabel("")
        layout.addWidget(self.scores)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        layout.addWidget(self.log, stretch=1)
        self.dialog_buttons = QDialogButtonBox(QDialogButtonBox.Help | QDialogButtonBox.Close)
        layout.addWidget(self.dialog_buttons)
        self.help_box: QMessageBox | None = None
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.segment_button.clicked.connect(self.segment)
        self.teacher_button.clicked.connect(self.segment_eo_with_teacher)
        self.dialog_buttons.rejected.connect(self.close)
        self.dialog_buttons.helpRequested.connect(self.show_help)
        screen = self.screen().availableGeometry().height() if self.screen() else 900
        self.resize(620, min(900, screen - 60))
        self.pick_layers()

    def _inputs(self) -> QGroupBox:
        box = QGroupBox("Layers")
        form = QFormLayout(box)
        self.sar_combo = QgsMapLayerComboBox()
        self.sar_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.eo_combo = QgsMapLayerComboBox()
        self.eo_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.labels_combo = QgsMapLayerComboBox()
        self.labels_combo.setFilters(QgsMapLayerProxyModel.RasterLayer | QgsMapLayerProxyModel.PolygonLayer)
        self.labels_combo.setAllowEmptyLayer(True)
        self.labels_combo.setLayer(None)
        self.field_combo = QgsFieldComboBox()
        self.field_combo.setFilters(QgsFieldProxyModel.Numeric)
        self.labels_combo.layerChanged.connect(self._labels_changed)
        self._labels_changed(None)
        form.addRow("SAR layer (VV, VH dB)", self.sar_combo)
        form.addRow("EO reference layer", self.eo_combo)
        form.addRow("Labels (optional)", self.labels_combo)
        form.addRow("Class field of label polygons", self.field_combo)
        return box

    def _parameters(self) -> QGroupBox:
        box = QGroupBox("Fine-tuning")
        form = QFormLayout(box)
        self.student_file = self._file_widget(bundled_model("student"))
        self.teacher_file = self._file_widget(bundled_model("teacher"))
        self.output_file = self._file_widget("", save=True)
        self.epochs = self._spin(*RANGES["epochs"], DEFAULTS.epochs)
        self.tile_size = self._spin(*RANGES["tile_size"], DEFAULTS.tile_size, step=16)
        self.learning_rate = self._double(*RANGES["lr"], DEFAULTS.lr, decimals=7, step=1e-4)
        self.distill_weight = self._double(
            *RANGES["distill_weight"], DEFAULTS.distill_weight, decimals=2, step=0.1
        )
        self.validation_fraction = self._double(
            *RANGES["validation_fraction"], DEFAULTS.validation_fraction, decimals=2, step=0.05
        )
        self.targets = QComboBox()
        self.targets.addItems(TARGET_CHOICES)
        self.targets.setCurrentIndex(TARGETS.index(DEFAULTS.targets))
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.sar_bands = QLineEdit()
        self.sar_bands.setPlaceholderText("automatic (band names, or two bands), e.g. 1,2 for VV, VH")
        self.eo_bands = QLineEdit()
        self.eo_bands.setPlaceholderText("automatic (band names or Sentinel-2 order), e.g. 2,3,4,8,12,13")
        form.addRow("Base student model", self.student_file)
        form.addRow("Teacher model", self.teacher_file)
        form.addRow("Output model file", self.output_file)
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Distillation weight", self.distill_weight)
        form.addRow("Tile size (pixels)", self.tile_size)
        form.addRow("Validation fraction (blocks)", self.validation_fraction)
        form.addRow("Targets without labels", self.targets)
        form.addRow("Device", self.device)
        form.addRow("SAR band numbers", self.sar_bands)
        form.addRow("EO band numbers", self.eo_bands)
        return box

    @staticmethod
    def _file_widget(path: str, save: bool = False) -> QgsFileWidget:
        widget = QgsFileWidget()
        widget.setFilter("HFD-Net model (*.pt)")
        widget.setStorageMode(QgsFileWidget.SaveFile if save else QgsFileWidget.GetFile)
        widget.setFilePath(path)
        return widget

    @staticmethod
    def _spin(low: int, high: int, value: int, step: int = 1) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setValue(value)
        return spin

    @staticmethod
    def _double(low: float, high: float, value: float, decimals: int, step: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setDecimals(decimals)
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setValue(value)
        return spin

    def pick_layers(self) -> None:
        """Start SAR and EO on different layers (by band names and counts) while they show the same one."""
        if self.sar_combo.currentLayer() is not self.eo_combo.currentLayer():
            return
        layers = QgsProject.instance().mapLayers().values()
        rasters = [layer for layer in layers if isinstance(layer, QgsRasterLayer)]
        sar, eo = pick_sar_and_eo(rasters)
        if sar is not None:
            self.sar_combo.setLayer(sar)
        if eo is not None:
            self.eo_combo.setLayer(eo)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API name)
        if not self.is_running():
            self.pick_layers()
        super().showEvent(event)

    def show_help(self) -> None:
        """The algorithm's help and where the full documentation is (non-modal)."""
        from hfd_qgis.paths import PLUGIN_DIR

        readme = PLUGIN_DIR / "README.md"
        readme = readme if readme.is_file() else PLUGIN_DIR.parent / "README.md"
        text = FinetuneAlgorithm().shortHelpString() + f"\n\nFull documentation: {readme}"
        self.help_box = QMessageBox(
            QMessageBox.Information, self.windowTitle(), text, QMessageBox.Close, self
        )
        self.help_box.setModal(False)
        self.help_box.show()

    def _labels_changed(self, layer) -> None:
        is_vector = isinstance(layer, QgsVectorLayer)
        self.field_combo.setLayer(layer if is_vector else None)
        self.field_combo.setEnabled(is_vector)

    def arguments(self) -> dict:
        """Keyword arguments of ``finetune`` from the widgets; InputError when they are unusable."""
        sar, eo = self.sar_combo.currentLayer(), self.eo_combo.currentLayer()
        if not isinstance(sar, QgsRasterLayer) or not isinstance(eo, QgsRasterLayer):
            raise InputError("choose a SAR layer and an EO layer")
        output = self.output_file.filePath().strip()
        if not output:
            raise InputError("choose where to write the fine-tuned model")
        output = check_output_model(output)
        sar_path = raster_path(sar)
        labels = self.labels_combo.currentLayer()
        label_path = None
        if labels is not None:
            label_path = label_raster(labels, self.field_combo.currentField(), sar_path, self._work.name)
        return {
            "sar_path": sar_path,
            "eo_path": raster_path(eo),
            "output_path": output,
            "student_path": self.student_file.filePath(),
            "teacher_path": self.teacher_file.filePath(),
            "label_path": label_path,
            "epochs": self.epochs.value(),
            "lr": self.learning_rate.value(),
            "distill_weight": self.distill_weight.value(),
            "tile_size": self.tile_size.value(),
            "validation_fraction": self.validation_fraction.value(),
            "targets": TARGETS[self.targets.currentIndex()],
            "device": self.device.currentText(),
            "sar_bands": parse_band_list(self.sar_bands.text()),
            "eo_bands": parse_band_list(self.eo_bands.text()),
        }

    def write(self, text: str) -> None:
        self.log.appendPlainText(text)

    def start(self) -> None:
        """Start a run as a background task (refused while one is running)."""
        if self.is_running():
            return
        missing = missing_dependency_message()
        if missing:
            self.write(f"Cannot start: {missing}")
            return
        from hfd_core.train.finetune import planned_targets

        try:
            arguments = self.arguments()
            targets = planned_targets(
                arguments["teacher_path"], arguments["label_path"], arguments["targets"]
            )
        except HFDError as error:  # unusable widgets, or a teacher file that cannot be read
            self.write(f"Cannot start: {error}")
            return
        self.model_path = None
        self.chart.clear()
        self.score = score_name(targets)
        self.chart.score_label = self.score
        self.log.clear()
        self.scores.setText("")
        self.progress.setFormat("%p%")
        self.progress.setValue(0)
        self.segment_button.setEnabled(False)
        self.write(
            f"Fine-tuning {Path(arguments['student_path']).name} on {Path(arguments['sar_path']).name} with "
            f"{Path(arguments['eo_path']).name}"
            + (" and labels" if arguments["label_path"] else ", label-free")
        )
        self.write(TARGET_MESSAGES[targets])
        self.task = FinetuneTask(arguments)
        self.task.epoch_finished.connect(self._epoch_finished)
        self.task.warned.connect(lambda message: self.write(f"Warning: {message}"))
        self.task.progressChanged.connect(self._progress)
        self.task.taskCompleted.connect(self._finished)
        self.task.taskTerminated.connect(self._finished)
        self._lock(True)
        QgsApplication.taskManager().addTask(self.task)

    def _lock(self, running: bool) -> None:
        """While a run lasts, the inputs and Start are locked and Cancel is available."""
        for box in self.inputs:
            box.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def is_running(self) -> bool:
        return self.task is not None and self.cancel_button.isEnabled()

    def cancel(self) -> None:
        if self.is_running():
            self.write("Cancelling: the best epoch so far will be kept")
            self.task.cancel()

    def _progress(self, value: float) -> None:
        """Follow the task, except after Cancel: QgsTask reports 100 when a cancelled run ends."""
        if not self.task.isCanceled():
            self.progress.setValue(int(value))

    def _epoch_finished(self, epoch: int, values: dict) -> None:
        self.chart.add_epoch(values["train_loss"], values.get("val_miou"))
        self.write(epoch_line(epoch, values, self.score))

    def _finished(self) -> None:
        task, result = self.task, self.task.result
        self._lock(False)
        if result is None or result.canceled:  # the bar stays where the run stopped
            self.progress.setFormat("cancelled at %p%" if task.error is None else "failed at %p%")
        if result is None:
            self.write(f"Stopped without a model: {task.error or 'cancelled'}")
            return
        before, after = result.base_metrics.get("val_miou"), result.best_metrics.get("val_miou")
        if before is not None and after is not None:
            line, warning = comparison(before, after, self.score)
            self.write(line)
            text = f"<b>{self.score[0].upper()}{self.score[1:]}</b><br>base model <b>{before:.4f}</b>"
            text += f" &nbsp;|&nbsp; fine-tuned <b>{after:.4f}</b>"
            if warning:  # one line each side of the colon: the label does not wrap (Qt sizes it by lines)
                text += (
                    '<br><span style="color:#b35900">Warning: ' + warning.replace("): ", "):<br>") + "</span>"
                )
            self.scores.setText(text)
            self.scores.setMinimumHeight(self.scores.sizeHint().height())  # the chart gives way, not it
            self.layout().activate()
            if warning:
                self.write(f"Warning: {warning}")
        state = "Cancelled; kept" if result.canceled else "Finished; wrote"
        self.write(f"{state} the best epoch ({result.best_epoch}) as {result.output_path}")
        self.model_path = str(result.output_path)
        if not result.canceled:
            self.progress.setValue(100)
        self.segment_button.setEnabled(True)

    def segment(self) -> None:
        """Open ``hfd:segment`` for the chosen SAR layer with the fine-tuned model (and the SAR band numbers,
        if given)."""
        self._open_segment(self.sar_combo.currentLayer(), self.model_path, self.sar_bands, "the SAR layer")

    def segment_eo_with_teacher(self) -> None:
        """Open ``hfd:segment`` for the EO layer with the teacher (and the EO band numbers, if given).

        Label-free fine-tuning follows the teacher's map of the EO, errors included (measured: a teacher at
        water IoU 0.30-0.48 took a student from 0.52-0.85 down to 0.13-0.37; README, fine-tuning), and nothing
        in the run can tell, so the analyst checks that map, before or after a run."""
        eo, teacher = self.eo_combo.currentLayer(), self.teacher_file.filePath().strip()
        if not isinstance(eo, QgsRasterLayer) or not teacher:
            self.write("Choose an EO layer and a teacher model first")
            return
        self._open_segment(eo, teacher, self.eo_bands, "the EO layer")

    def _open_segment(self, layer: QgsRasterLayer, model: str, bands: QLineEdit, what: str) -> None:
        """The ``hfd:segment`` dialog for ``layer`` with ``model`` and the band numbers typed in ``bands``."""
        from processing import execAlgorithmDialog

        try:
            numbers = parse_band_list(bands.text())
        except InputError as error:
            self.write(f"Cannot segment {what}: {error}")
            return
        parameters = {"INPUT": layer, "MODEL": model}
        if numbers:
            parameters["BANDS"] = numbers
        execAlgorithmDialog("hfd:segment", parameters)
