"""hfd:evaluate "Evaluate segmentation": scores of a class raster against reference classes, HTML + CSV."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QIcon

from hfd_core.errors import InputError
from hfd_qgis.common import ChoicesByLabel, check_outputs, core_errors
from hfd_qgis.paths import icon_path


class EvaluateAlgorithm(ChoicesByLabel):
    PREDICTION = "PREDICTION"
    REFERENCE = "REFERENCE"
    REFERENCE_FIELD = "REFERENCE_FIELD"
    ONE_CLASS = "ONE_CLASS"
    CLASS_MAPPING = "CLASS_MAPPING"
    CLASS_NAMES = "CLASS_NAMES"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_CSV = "OUTPUT_CSV"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802 (QGIS API name)
        return "Evaluate segmentation"

    def icon(self) -> QIcon:
        return QIcon(icon_path("evaluate"))

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Compares a segmentation (class ids, e.g. the output of Segment SAR layer) with a reference: "
            "<b>Reference: class-id raster or polygons</b>; for polygons, <b>Class-id field</b> names their "
            "numeric field (empty: their only numeric field). The reference is brought onto the "
            "segmentation's grid (nearest neighbour) and only their overlap is compared; nodata is not "
            "counted.<br><br>"
            "References rarely use the model's class ids (Sen1Floods11: 1 water, 0 not water, as the bundled "
            "water model; the bundled land-cover model: 0 water, 1 built-up, 2 tree cover, 3 low vegetation, "
            "4 bare / sparse). <b>Class mapping</b> translates them, as reference value: model class, e.g. "
            "<i>1: water, 0: low vegetation</i> (classes by name or id; unlisted values are not counted). "
            "<b>Compare one class against the rest</b> (e.g. <i>water</i>) scores that class against all "
            "others; with a class mapping, the reference values mapped to it are the class (e.g. <i>1: "
            "water</i>), all other valid values the rest. Without either, a warning says when the "
            "reference's values do not line up with the classes, and suggests pairs or one class against the "
            "rest.<br><br>"
            "Class names come from the segmentation (its style or the class names it was written with) "
            "unless <b>Class names</b> are given. Writes overall accuracy, mean IoU, per-class IoU/F1, "
            "Cohen's kappa and the confusion matrix (rows reference, columns prediction) to the log and, "
            "unless skipped, as an HTML report and a CSV table."
        )

    def createInstance(self) -> EvaluateAlgorithm:  # noqa: N802
        return EvaluateAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.PREDICTION, "Segmentation (class ids)"))
        # One required layer, raster or polygons, and the field as plain text: a field parameter whose parent
        # can be a raster crashed QGIS 3.22 (QgsProcessingFieldWidgetWrapper::setParentLayerWrapperValue).
        self.addParameter(
            QgsProcessingParameterMapLayer(
                self.REFERENCE,
                "Reference: class-id raster or polygons",
                types=[QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPolygon],
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.REFERENCE_FIELD,
                "Class-id field of reference polygons (empty: their only numeric field)",
                optional=True,
            )
        )
        for name, description in (
            (self.ONE_CLASS, "Compare one class against the rest (class name or id, e.g. water)"),
            (self.CLASS_MAPPING, "Class mapping, reference value: model class (e.g. 1: water, 0: 3)"),
            (self.CLASS_NAMES, "Class names in id order, comma separated (empty: from the segmentation)"),
        ):
            self.addParameter(QgsProcessingParameterString(name, description, optional=True))
        # Optional, created by default in the dialog: the scores are also in the log and the outputs OA, MIOU
        # and KAPPA, so `qgis_process run hfd:evaluate -- PREDICTION=... REFERENCE=...` needs no file names.
        for name, description, file_filter in (
            (self.OUTPUT_HTML, "Report", "HTML files (*.html)"),
            (self.OUTPUT_CSV, "Per-class table", "CSV files (*.csv)"),
        ):
            self.addParameter(
                QgsProcessingParameterFileDestination(
                    name, description, file_filter, optional=True, createByDefault=True
                )
            )
        for name, description in (("OA", "Overall accuracy"), ("MIOU", "Mean IoU"), ("KAPPA", "Kappa")):
            self.addOutput(QgsProcessingOutputNumber(name, description))

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802
        parameters = self.choices_as_numbers(parameters)
        from hfd_core.metrics.report import (
            class_id,
            compare_rasters,
            format_score,
            parse_class_mapping,
            prediction_class_names,
            write_csv,
            write_html,
        )
        from hfd_qgis.label_layers import label_raster, only_numeric_field, raster_path

        check_outputs(self, parameters, context)
        prediction = self.parameterAsRasterLayer(parameters, self.PREDICTION, context)
        field = self.parameterAsString(parameters, self.REFERENCE_FIELD, context)
        names = [n.strip() for n in self.parameterAsString(parameters, self.CLASS_NAMES, context).split(",")]
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        csv_path = self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context)
        with core_errors():
            reference = self.parameterAsLayer(parameters, self.REFERENCE, context)
            if isinstance(reference, QgsVectorLayer) and not field:
                field = only_numeric_field(reference)
            prediction_path = raster_path(prediction)
            class_names = [n for n in names if n] or prediction_class_names(prediction_path)
            mapping_text = self.parameterAsString(parameters, self.CLASS_MAPPING, context)
            one_class = self.parameterAsString(parameters, self.ONE_CLASS, context).strip()
            names_needed = mapping_text.strip() or one_class
            if names_needed and not class_names:
                raise InputError("the segmentation has no class names: give Class names to use a mapping")
            mapping = parse_class_mapping(mapping_text, class_names) if mapping_text.strip() else None
            positive = class_id(one_class, class_names) if one_class else None
            folder = QgsProcessingUtils.tempFolder()
            reference_path = label_raster(reference, field, prediction_path, folder)
            report = compare_rasters(
                prediction_path, reference_path, class_names, mapping=mapping, positive=positive
            )
        if isinstance(reference, QgsVectorLayer):
            feedback.pushInfo(f"Reference polygons rasterised onto the segmentation grid: {reference_path}")
        if html_path:
            write_html(report, html_path)
        if csv_path:
            write_csv(report, csv_path)
        feedback.pushInfo(f"Compared: {report.comparison}")
        for warning in report.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(
            f"{report.pixels} pixels compared: OA {format_score(report.oa)}, "
            f"mIoU {format_score(report.miou)}, kappa {format_score(report.kappa)}"
        )
        for name, iou in zip(report.class_names, report.iou, strict=True):
            feedback.pushInfo(f"  IoU {name}: {format_score(iou)}")
        return {
            self.OUTPUT_HTML: html_path,
            self.OUTPUT_CSV: csv_path,
            "OA": report.oa,
            "MIOU": report.miou,
            "KAPPA": report.kappa,
        }
