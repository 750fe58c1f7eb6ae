"""hfd:evaluate "Evaluate segmentation": scores of a class raster against reference classes, HTML + CSV."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingOutputNumber,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsVectorLayer,
)

from hfd_qgis.common import core_errors


class EvaluateAlgorithm(QgsProcessingAlgorithm):
    PREDICTION = "PREDICTION"
    REFERENCE = "REFERENCE"
    REFERENCE_FIELD = "REFERENCE_FIELD"
    CLASS_NAMES = "CLASS_NAMES"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_CSV = "OUTPUT_CSV"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802 (QGIS API name)
        return "Evaluate segmentation"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Compares a segmentation (class ids, e.g. the output of Segment SAR layer) with a reference: a "
            "raster of class ids or polygons with a class-id field. The reference is brought onto the "
            "prediction's grid (nearest neighbour) and only their overlap is compared; nodata and values "
            "outside the classes are not counted. Writes overall accuracy, mean IoU, per-class IoU/F1, "
            "Cohen's kappa and the confusion matrix (rows reference, columns prediction) as an HTML report "
            "and a CSV table."
        )

    def createInstance(self) -> EvaluateAlgorithm:  # noqa: N802
        return EvaluateAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.PREDICTION, "Segmentation (class ids)"))
        self.addParameter(
            QgsProcessingParameterMapLayer(
                self.REFERENCE,
                "Reference (class-id raster or polygons)",
                types=[QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPolygon],
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.REFERENCE_FIELD,
                "Class-id field of reference polygons",
                parentLayerParameterName=self.REFERENCE,
                type=QgsProcessingParameterField.Numeric,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.CLASS_NAMES, "Class names in id order, comma separated (optional)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Report", "HTML files (*.html)")
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT_CSV, "Per-class table", "CSV files (*.csv)")
        )
        for name, description in (("OA", "Overall accuracy"), ("MIOU", "Mean IoU"), ("KAPPA", "Kappa")):
            self.addOutput(QgsProcessingOutputNumber(name, description))

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802
        from hfd_core.metrics.report import compare_rasters, write_csv, write_html
        from hfd_qgis.label_layers import label_raster, raster_path

        prediction = self.parameterAsRasterLayer(parameters, self.PREDICTION, context)
        reference = self.parameterAsLayer(parameters, self.REFERENCE, context)
        field = self.parameterAsString(parameters, self.REFERENCE_FIELD, context)
        names = [n.strip() for n in self.parameterAsString(parameters, self.CLASS_NAMES, context).split(",")]
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        csv_path = self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context)
        with core_errors():
            prediction_path = raster_path(prediction)
            folder = QgsProcessingUtils.tempFolder()
            reference_path = label_raster(reference, field, prediction_path, folder)
            report = compare_rasters(prediction_path, reference_path, [n for n in names if n] or None)
        if isinstance(reference, QgsVectorLayer):
            feedback.pushInfo(f"Reference polygons rasterised onto the segmentation grid: {reference_path}")
        write_html(report, html_path)
        write_csv(report, csv_path)
        feedback.pushInfo(
            f"{report.pixels} pixels compared: OA {report.oa:.4f}, mIoU {report.miou:.4f}, "
            f"kappa {report.kappa:.4f}"
        )
        for name, iou in zip(report.class_names, report.iou, strict=True):
            feedback.pushInfo(f"  IoU {name}: {iou:.4f}")
        return {
            self.OUTPUT_HTML: html_path,
            self.OUTPUT_CSV: csv_path,
            "OA": report.oa,
            "MIOU": report.miou,
            "KAPPA": report.kappa,
        }
