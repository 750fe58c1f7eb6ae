"""hfd:finetune "Fine-tune SAR model with EO reference": adapt the student to the analyst's area."""

from __future__ import annotations

import math

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)
from qgis.PyQt.QtGui import QIcon

from hfd_core import finetune_defaults
from hfd_core.errors import InputError
from hfd_core.files import BUNDLED_REFUSED, is_bundled_model
from hfd_core.finetune_defaults import DEFAULTS, RANGES
from hfd_qgis.common import (
    DEVICES,
    ChoicesByLabel,
    check_outputs,
    core_errors,
    model_file,
    model_file_parameter,
    parse_band_list,
)
from hfd_qgis.label_layers import class_layer_parameters
from hfd_qgis.paths import icon_path, resources_dir


def check_output_model(path: str) -> str:
    """``path`` with a ``.pt`` suffix; InputError when it would replace a bundled model (by place or content,
    ``hfd_core.files.is_bundled_model``)."""
    if not path.endswith(".pt"):
        path += ".pt"
    if is_bundled_model(path, [resources_dir() / "models"]):
        raise InputError(f"{path}: {BUNDLED_REFUSED}")
    return path


#: hfd:finetune's choices of targets without labels, in ``finetune_defaults.TARGETS`` order.
TARGET_CHOICES = ("Spectral rules first, then the teacher", "The teacher only")
#: Messages and validation score names by the targets a run trains on (``planned_targets``).
TARGET_MESSAGES = {
    "labels": "Targets: labels (teacher predictions where unlabelled)",
    "rules": "No labels: the spectral rules' classes on the EO layer where they claim a pixel, no target "
    "under cloud or snow, the teacher's predictions elsewhere",
    "teacher": "No labels: label-free fine-tuning on the teacher's predictions from the EO layer",
}


def score_name(targets: str) -> str:
    """The validation score's one name, used in the log, the chart and the final comparison: mIoU against the
    labels, or without labels the mIoU of agreement with the targets (``planned_targets``), on the held-out
    blocks."""
    if targets == "labels":
        return "validation mIoU"
    return (
        f"validation agreement with the {'rules and the teacher' if targets == 'rules' else 'teacher'} (mIoU)"
    )


def epoch_line(epoch: int, values: dict, score: str) -> str:
    """One log line per epoch: training loss and validation scores (``score``: the score's name)."""
    text = f"epoch {epoch}: loss {values['train_loss']:.4f}"
    if "val_miou" in values:
        text += f", {score} {values['val_miou']:.4f}, OA {values['val_oa']:.4f}"
    return text


#: Logged when no block was held out: no score compares the models, and the epoch kept is the one of the
#: lowest training loss (``train.loop``).
NOTHING_HELD_OUT = (
    "no block was held out (Validation fraction 0, or no block with enough valid pixels or any target): "
    "nothing scores the fine-tuned model against the base model, and the epoch kept is the one with the "
    "lowest training loss"
)


def comparison(base: float, tuned: float, score: str) -> tuple[str, str | None]:
    """The base and fine-tuned models' scores on the held-out blocks side by side, and a warning when
    fine-tuning lowered the score (the base model is then the better choice on this area)."""
    line = (
        f"{score[0].upper()}{score[1:]} on the held-out blocks: base model {base:.4f}, fine-tuned {tuned:.4f}"
    )
    if not tuned < base:
        return line, None
    return line, (
        f"the fine-tuned model scores below the base model ({tuned:.4f} < {base:.4f}): keep the base model, "
        "or try again with labels, more epochs or a lower learning rate"
    )


class FinetuneAlgorithm(ChoicesByLabel):
    SAR = "SAR"
    EO = "EO"
    LABELS_RASTER = "LABELS_RASTER"
    LABELS_VECTOR = "LABELS_VECTOR"
    LABEL_FIELD = "LABEL_FIELD"
    BASE_MODEL = "BASE_MODEL"
    TEACHER_MODEL = "TEACHER_MODEL"
    EPOCHS = "EPOCHS"
    LEARNING_RATE = "LEARNING_RATE"
    DISTILL_WEIGHT = "DISTILL_WEIGHT"
    TILE_SIZE = "TILE_SIZE"
    VALIDATION_FRACTION = "VALIDATION_FRACTION"
    TARGETS = "TARGETS"
    DEVICE = "DEVICE"
    SAR_BANDS = "SAR_BANDS"
    EO_BANDS = "EO_BANDS"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    CHOICE_NAMES = {"TARGETS": finetune_defaults.TARGETS}

    def name(self) -> str:
        return "finetune"

    def displayName(self) -> str:  # noqa: N802 (QGIS API name)
        return "Fine-tune SAR model with EO reference"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Adapts the land-cover SAR student model to your area (the water model reads each pixel with "
            "the whole raster's statistics and is not fine-tuned: map water with Segment SAR layer, Bundled "
            "model Water). The EO layer (e.g. a cloud-free Sentinel-2 image of "
            "the same place) is reprojected and resampled onto the SAR grid; only the overlap is used. The "
            "student is trained with the heterogeneous feature distillation loss from the frozen EO teacher "
            "and a segmentation loss on the labels, or without labels (label-free fine-tuning) on targets "
            "from the EO: by default (Targets without labels) the spectral rules' classes where a rule "
            "claims the pixel, no target where they see cloud or snow (the EO does not show the ground "
            "there), the teacher's predictions elsewhere; or the teacher's everywhere. Spatial "
            "blocks (Validation fraction of the overlap) are held out: the log shows per epoch the loss and "
            "the validation mIoU against the labels, or without labels the agreement with the targets, and "
            "the base model's score on the same blocks. "
            "Cancel keeps the best epoch so far. The model file records the fine-tuning (and the held-out "
            "blocks) in its metadata; the bundled models are never overwritten.\n\n"
            'Defaults (README "Fine-tuning defaults"): all layers train, AdamW with learning rate 1e-3 '
            "decayed to 0 (poly), 10 epochs of at least 32 random 256-pixel windows each (80 steps on a 512 x"
            " 512 chip) with flips and 90-degree rotations, rules first as targets, feature distillation "
            "weight 1, a fifth of the 256-pixel blocks held out; 3 to 7 CPU minutes on a 512 x 512 chip. "
            "Measured on the Sen1Floods11 chip India_900498 (water IoU against hand labels on three held-out "
            "blocks), which the bundled models never saw: the bundled student scores 0.03-0.23 (it calls the "
            "flooded fields another class), fine-tuned with these defaults 0.69-0.88, at the teacher's "
            "0.50-0.89 and above Otsu on VH (0.57-0.82). With another training of those models whose teacher "
            "failed on that chip (0.30-0.48), the teacher's predictions as targets took the student from "
            "0.52-0.85 down to 0.13-0.37, rules first up to 0.66-0.89. The student learns its targets' map, "
            "errors included, so look at the teacher's map first: Segment SAR layer (hfd:segment) with the EO"
            " layer as input and the teacher's file as model (the fine-tuning dialog's button Teacher's map "
            "of EO layer). Where it is wrong, give labels."
        )

    def icon(self) -> QIcon:
        return QIcon(icon_path("finetune"))

    def createInstance(self) -> FinetuneAlgorithm:  # noqa: N802
        return FinetuneAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.SAR, "SAR layer (Sentinel-1 VV, VH dB)"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.EO, "EO reference layer (Sentinel-2)"))
        for parameter in class_layer_parameters(
            self.LABELS_RASTER, self.LABELS_VECTOR, self.LABEL_FIELD, "Labels"
        ):
            self.addParameter(parameter)
        for name, description, role in (
            (self.BASE_MODEL, "Base student model", "student"),
            (self.TEACHER_MODEL, "Teacher model (EO)", "teacher"),
        ):
            self.addParameter(model_file_parameter(name, description, role))
        number = QgsProcessingParameterNumber
        for name, description, kind, setting in (
            (self.EPOCHS, "Epochs", number.Integer, "epochs"),
            (self.LEARNING_RATE, "Learning rate", number.Double, "lr"),
            (self.DISTILL_WEIGHT, "Distillation weight", number.Double, "distill_weight"),
            (self.TILE_SIZE, "Tile size (pixels)", number.Integer, "tile_size"),
            (
                self.VALIDATION_FRACTION,
                "Validation fraction (spatial blocks)",
                number.Double,
                "validation_fraction",
            ),
        ):
            low, high = RANGES[setting]
            default = getattr(DEFAULTS, setting)
            self.addParameter(number(name, description, kind, default, minValue=low, maxValue=high))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.TARGETS,
                "Targets without labels",
                options=list(TARGET_CHOICES),
                defaultValue=finetune_defaults.TARGETS.index(DEFAULTS.targets),
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICES), defaultValue=0)
        )
        for name, description in (
            (self.SAR_BANDS, "SAR band numbers for the student, e.g. 1,2 for VV, VH (empty: automatic)"),
            (self.EO_BANDS, "EO band numbers for the teacher (empty: automatic)"),
        ):
            self.addParameter(QgsProcessingParameterString(name, description, optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_MODEL, "Fine-tuned model", "HFD-Net model (*.pt)"
            )
        )
        for name, description in (
            ("BEST_EPOCH", "Best epoch"),
            ("VAL_MIOU_BEFORE", "Validation mIoU of the base model"),
            ("VAL_MIOU_AFTER", "Validation mIoU of the fine-tuned model"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, description))

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802
        parameters = self.choices_as_numbers(parameters)
        from hfd_core.train.config import TrainCallbacks
        from hfd_core.train.finetune import finetune, planned_targets
        from hfd_qgis.label_layers import class_layer, label_raster, raster_path

        check_outputs(self, parameters, context)
        with core_errors():
            output = check_output_model(self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context))
            sar_path = raster_path(self.parameterAsRasterLayer(parameters, self.SAR, context))
            eo_path = raster_path(self.parameterAsRasterLayer(parameters, self.EO, context))
            names = (self.LABELS_RASTER, self.LABELS_VECTOR)
            labels = class_layer(self, parameters, context, names, "labels")
            label_path = None
            if labels is not None:
                field = self.parameterAsString(parameters, self.LABEL_FIELD, context)
                label_path = label_raster(labels, field, sar_path, QgsProcessingUtils.tempFolder())
            teacher = model_file(self, parameters, self.TEACHER_MODEL, context, "teacher")
            chosen = finetune_defaults.TARGETS[self.parameterAsEnum(parameters, self.TARGETS, context)]
            targets = planned_targets(teacher, label_path, chosen)
            score = score_name(targets)
            feedback.pushInfo(TARGET_MESSAGES[targets])
            callbacks = TrainCallbacks(
                on_epoch_end=lambda epoch, values: feedback.pushInfo(epoch_line(epoch, values, score)),
                should_stop=feedback.isCanceled,
                on_progress=feedback.setProgress,
                on_warning=feedback.pushWarning,
            )
            result = finetune(
                sar_path,
                eo_path,
                output,
                model_file(self, parameters, self.BASE_MODEL, context, "student"),
                teacher,
                label_path,
                epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
                lr=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
                distill_weight=self.parameterAsDouble(parameters, self.DISTILL_WEIGHT, context),
                targets=chosen,
                tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
                validation_fraction=self.parameterAsDouble(parameters, self.VALIDATION_FRACTION, context),
                device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                sar_bands=parse_band_list(self.parameterAsString(parameters, self.SAR_BANDS, context)),
                eo_bands=parse_band_list(self.parameterAsString(parameters, self.EO_BANDS, context)),
                callbacks=callbacks,
            )
        before = result.base_metrics.get("val_miou", math.nan)
        after = result.best_metrics.get("val_miou", math.nan)
        if result.validation_blocks:
            line, warning = comparison(before, after, score)
            feedback.pushInfo(line)
            if warning:
                feedback.pushWarning(warning)
        else:
            feedback.pushWarning(NOTHING_HELD_OUT)
        if result.canceled:
            # a warning, not an error: the run ends well with a usable model (qgis_process printed "ERROR")
            feedback.pushWarning(f"Cancelled: kept the best epoch so far ({result.best_epoch}) in {output}")
        else:
            feedback.pushInfo(f"Best epoch {result.best_epoch} written to {output}")
        return {
            self.OUTPUT_MODEL: output,
            "BEST_EPOCH": result.best_epoch,
            "VAL_MIOU_BEFORE": before,
            "VAL_MIOU_AFTER": after,
        }
