"""hfd:segment "Segment SAR layer": land-cover map of a SAR raster with an HFD-Net student model."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from hfd_core.infer import DEFAULT_OVERLAP
from hfd_qgis.common import DEVICES, core_errors, model_file, model_file_parameter, progress_callbacks
from hfd_qgis.label_layers import raster_path

INPUT_SCALES = ("auto", "db", "linear")
INPUT_SCALE_LABELS = ("Detect (dB or linear power)", "dB (sigma0 in decibels)", "Linear power")


class StyleFromQml(QgsProcessingLayerPostProcessorInterface):
    """Applies the ``.qml`` written beside the output GeoTIFF when QGIS loads the result."""

    instances: list[StyleFromQml] = []  # QGIS does not own post-processors: keep them alive

    def __init__(self, qml: str):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 (QGIS API name)
        if layer is not None and Path(self.qml).is_file():
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()

    @classmethod
    def attach(cls, context: QgsProcessingContext, output: str, qml: str) -> None:
        if context.willLoadLayerOnCompletion(output):
            processor = cls(qml)
            cls.instances.append(processor)
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)


class SegmentAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    BANDS = "BANDS"
    MODEL = "MODEL"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    INPUT_SCALE = "INPUT_SCALE"
    OUTPUT = "OUTPUT"
    CONFIDENCE = "CONFIDENCE"

    def name(self) -> str:
        return "segment"

    def displayName(self) -> str:  # noqa: N802 (QGIS API name)
        return "Segment SAR layer"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Classifies every pixel of a SAR raster with an HFD-Net student model (trained with a "
            "Sentinel-2 teacher, it needs only SAR).\n\n"
            "The bundled model expects Sentinel-1 IW GRD backscatter, bands VV and VH as sigma0 in dB at "
            "10 m, and maps water, built-up, tree cover, low vegetation and bare/sparse ground; see "
            "resources/models/MODEL_CARD.md for its accuracy and limits.\n\n"
            "BANDS: the layer's bands in the model's order (default: the first ones). INPUT SCALE: linear "
            "power is detected and converted to dB; values that cannot be Sentinel-1 dB are refused.\n"
            "The raster is read in overlapping tiles whose class probabilities are blended, so any size "
            "works in bounded memory. TILE SIZE 0 uses the model's; BATCH SIZE 0 picks one for the device. "
            "Each pixel takes its class mostly from the tile where it lies deepest: an OVERLAP of half the "
            "tile makes the map almost independent of the tiling (2.25 times the work of a quarter).\n"
            "NaN and nodata input pixels are nodata (255) in the output. The output GeoTIFF keeps the "
            "input's grid and CRS, carries a colour table and a .qml style beside it. CONFIDENCE "
            "(optional) is the probability of the chosen class in percent."
        )

    def createInstance(self) -> SegmentAlgorithm:  # noqa: N802
        return SegmentAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "SAR layer"))
        self.addParameter(
            QgsProcessingParameterBand(
                self.BANDS, "Bands in the model's order (e.g. VV, VH)", None, self.INPUT, optional=True,
                allowMultiple=True,
            )
        )  # fmt: skip
        self.addParameter(model_file_parameter(self.MODEL, "Model file", "student"))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TILE_SIZE, "Tile size (pixels, 0 = model's)", QgsProcessingParameterNumber.Integer, 0,
                minValue=0, maxValue=4096,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterNumber(
                self.OVERLAP, "Tile overlap (pixels)", QgsProcessingParameterNumber.Integer, DEFAULT_OVERLAP,
                minValue=0, maxValue=1024,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size (tiles, 0 = automatic)", QgsProcessingParameterNumber.Integer, 0,
                minValue=0, maxValue=512,
            )
        )  # fmt: skip
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", list(DEVICES), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.INPUT_SCALE, "Input scale", list(INPUT_SCALE_LABELS), defaultValue=0
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Land cover"))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.CONFIDENCE, "Confidence (percent)", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputNumber("VALID_PIXELS", "Valid pixels"))

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("INPUT is not a raster layer GDAL can read")
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        confidence = self.parameterAsOutputLayer(parameters, self.CONFIDENCE, context) or None
        progress, is_canceled = progress_callbacks(feedback)
        with core_errors():
            from hfd_core.infer.tiled import segment_raster

            result = segment_raster(
                raster_path(layer),
                output,
                model_file(self, parameters, self.MODEL, context, "student"),
                bands=self.parameterAsInts(parameters, self.BANDS, context) or None,
                tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
                overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context) or None,
                device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                input_scale=INPUT_SCALES[self.parameterAsEnum(parameters, self.INPUT_SCALE, context)],
                confidence_path=confidence,
                progress=progress,
                is_canceled=is_canceled,
            )
        feedback.pushInfo(result.summary())
        StyleFromQml.attach(context, output, str(Path(output).with_suffix(".qml")))
        outputs = {self.OUTPUT: output, "VALID_PIXELS": result.valid_pixels}
        if confidence:
            outputs[self.CONFIDENCE] = confidence
        return outputs
