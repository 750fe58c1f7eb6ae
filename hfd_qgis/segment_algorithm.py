"""hfd:segment "Segment SAR layer": land-cover map of a SAR raster with an HFD-Net student model."""

from __future__ import annotations

import html
from pathlib import Path

from qgis.core import (
    QgsLayerTreeLayer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProject,
)
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QIcon

from hfd_core.infer import (
    BATCH_SIZE_RANGE,
    DEFAULT_OVERLAP,
    INPUT_SCALES,
    OVERLAP_RANGE,
    STACK_HINT,
    TILE_SIZE_RANGE,
)
from hfd_qgis.common import (
    DEVICES,
    ChoicesByLabel,
    check_outputs,
    core_errors,
    model_file,
    parse_band_list,
    progress_callbacks,
)
from hfd_qgis.label_layers import raster_path
from hfd_qgis.paths import icon_path, model_card_path

INPUT_SCALE_LABELS = (
    "Detect (dB, linear power or amplitude)",
    "dB (sigma0 in decibels)",
    "Linear power",
    "Amplitude (square root of power)",
)


class StyleFromQml(QgsProcessingLayerPostProcessorInterface):
    """Applies the ``.qml`` written beside the output GeoTIFF when QGIS loads the result, tags the layer with
    the input it was segmented from, places it on top of that input's stack and makes the input (``input_id``)
    the active layer again.

    QGIS 3.22 loads outputs in the order of their paths and inserts each above the active layer, which it then
    makes the new layer; the Processing dialog starts from the active layer, but a class map is no SAR input,
    so the input is made active again. Inserted above it, a second run's outputs went under the first run's,
    which still hid them (a user's desktop audit). So a layer goes above the topmost layer of the input's
    stack in its group (the input and the earlier outputs tagged with it), the class map directly above its
    own confidence (``over``): newest on top, each run reading class map, confidence, whatever the load
    order. The class map's legend is expanded, the confidence's ramp (``expanded`` False) collapsed.
    """

    instances: list[StyleFromQml] = []  # QGIS does not own post-processors: keep them alive
    #: Layer property naming the layer id of the input an output was segmented from.
    SEGMENTED_FROM = "hfd/segmented_from"

    def __init__(self, qml: str, input_id: str, run: list[str], over: str | None, expanded: bool):
        super().__init__()
        self.qml = qml
        self.input_id = input_id
        self.run = run
        self.over = over
        self.expanded = expanded

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 (QGIS API name)
        if layer is None:
            return
        if Path(self.qml).is_file():
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()
        layer.setCustomProperty(self.SEGMENTED_FROM, self.input_id)
        project = QgsProject.instance()
        node = project.layerTreeRoot().findLayer(layer.id())
        if node is None:
            return
        parent = node.parent()
        anchor = self._anchor([child for child in parent.children() if child is not node])
        if anchor is not None:
            moved = node.clone()
            parent.insertChildNode(parent.children().index(anchor), moved)
            parent.removeChildNode(node)
            node = moved
        node.setExpanded(self.expanded)
        from qgis.utils import iface

        if iface is not None and project.mapLayer(self.input_id) is not None:
            iface.setActiveLayer(project.mapLayer(self.input_id))

    def _anchor(self, siblings: list) -> QgsLayerTreeLayer | None:
        """The node to go directly above: this run's ``over`` output, else the topmost node of the input's
        stack that is not of this run; None when neither is among ``siblings``."""
        layers = [(child, child.layer()) for child in siblings if isinstance(child, QgsLayerTreeLayer)]
        own = [child for child, other in layers if other is not None and other.source() == self.over]
        stack = [
            child
            for child, other in layers
            if other is not None
            and other.source() not in self.run
            and self.input_id in (other.id(), other.customProperty(self.SEGMENTED_FROM))
        ]
        return next(iter(own + stack), None)

    @classmethod
    def attach(
        cls,
        context: QgsProcessingContext,
        output: str,
        name: str,
        input_id: str,
        run: list[str],
        over: str | None = None,
        expanded: bool = True,
    ) -> None:
        """Style the layer QGIS loads from ``output`` with the ``.qml`` beside it and call it ``name`` (QGIS
        still names a layer after its file when the user typed one and prefers file names); ``run``: the
        paths of this run's outputs; ``over``: the one this layer goes directly above."""
        if context.willLoadLayerOnCompletion(output):
            processor = cls(str(Path(output).with_suffix(".qml")), input_id, run, over, expanded)
            cls.instances.append(processor)
            details = context.layerToLoadOnCompletionDetails(output)
            details.setPostProcessor(processor)
            details.name = name


def forget_skipped_outputs(context: QgsProcessingContext) -> None:
    """Drop the empty path an optional output left empty in a batch row registers for loading: QGIS 3.22's
    batch dialog would report it as "not correctly generated"."""
    layers = context.layersToLoadOnCompletion()
    if "" in layers:
        del layers[""]
        context.setLayersToLoadOnCompletion(layers)


class SegmentAlgorithm(ChoicesByLabel):
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
    BUNDLED_MODEL = "BUNDLED_MODEL"
    #: Bundled models by name (label, file stem, what the output is called), in the enum's order.
    BUNDLED = (("Land cover", "student", "land cover"), ("Water", "water_student", "water"))
    CHOICE_NAMES = {"INPUT_SCALE": INPUT_SCALES}

    def name(self) -> str:
        return "segment"

    def displayName(self) -> str:  # noqa: N802 (QGIS API name)
        return "Segment SAR layer"

    def icon(self) -> QIcon:
        return QIcon(icon_path("segment"))

    def helpUrl(self) -> str:  # noqa: N802
        """The model card (classes, training data, accuracy, limits) opened by the dialog's Help button."""
        return QUrl.fromLocalFile(str(model_card_path())).toString()

    def shortHelpString(self) -> str:  # noqa: N802
        card = QUrl.fromLocalFile(str(model_card_path())).toString()
        water_card = QUrl.fromLocalFile(str(model_card_path("WATER_MODEL_CARD.md"))).toString()
        return (
            "Classifies every pixel of a SAR raster with an HFD-Net student model: it needs only SAR. The "
            "bundled models expect Sentinel-1 IW GRD backscatter, VV and VH at 10 m.<br><br>"
            "<b>Bundled model</b>: <i>Land cover</i> (the default) maps 0 water, 1 built-up, 2 tree cover, 3 "
            "low vegetation, 4 bare / sparse. <i>Water</i> maps 1 water, 0 not water: choose it to map "
            "water or floods. On calibrated chips it never saw, it maps open water as well as the classical "
            "recipe (7 x 7 mean filter, Otsu on VH bounded at -18 dB; water IoU on India 0.763 against "
            "0.759, on Sri Lanka 0.995 against 0.996) and calls far less false water: none on two dry "
            "chips (the recipe 1.6 % and 1.0 %); on a chip with 3.7 % flooded vegetation it scores 0.09, "
            "the recipe, calling 54 % of the chip water, 0.06; pooled water IoU 0.86 against 0.61. It "
            "misses most flooded vegetation, which "
            "is bright in VV. The log gives the share of water the recipe would map beside the model's. "
            "<b>Model file</b> replaces the bundled model. Accuracy and limits are in the model cards: land "
            f'cover (the Help button) <a href="{card}">{card}</a>; water <a href="{water_card}">{water_card}'
            "</a><br><br>"
            "<b>Bands in the model's order</b>: the layer's bands for VV, VH (default: found by the band "
            "descriptions, e.g. VV and VH, else the first ones; band numbers such as 2,1; chosen bands that "
            "the descriptions contradict are refused, and so are bands whose VV is darker than their VH). "
            f"{html.escape(STACK_HINT[0].upper() + STACK_HINT[1:], quote=False)}. "
            "<b>Input scale</b>: sigma0 in dB; "
            "linear power and amplitude are detected and converted to dB; values that cannot be Sentinel-1 "
            "dB, or cannot be told apart, are refused.<br><br>"
            "<b>Class map</b>: uint8 on the input's grid and CRS, NaN and nodata input pixels as 255, with a "
            'colour table and a .qml style beside it; loaded as "&lt;input&gt; land cover" or '
            '"&lt;input&gt; water". <b>Confidence</b> (optional): the probability of the chosen class in '
            "percent, styled with a colour ramp. A full Sentinel-1 scene takes about 10 minutes on 2 CPU "
            "cores.<br><br>"
            "Under <i>Advanced parameters</i>: the raster is read in overlapping tiles whose class "
            "probabilities are blended, so any size works in bounded memory. <b>Tile size</b> 0 is "
            "automatic: 512 on CPU (the model's if larger), the model's on a GPU; <b>Batch size</b> 0 picks "
            "one for the device. Each pixel takes its class mostly from the tile where it lies deepest: a "
            "<b>Tile overlap</b> of half the tile makes the map almost independent of the tiling (2.25 times "
            "the work of a quarter)."
        )

    def band_numbers(self, parameters: dict, context: QgsProcessingContext) -> list[int] | None:
        """BANDS as 1-based numbers; None: found by the model. Text such as ``2,1`` (what the swapped-band
        message suggests, and what qgis_process passes as one string) is read as band numbers: QGIS reads only
        ``2;1`` or a repeated ``BANDS=``, and took ``2,1`` for band 0."""
        value = parameters.get(self.BANDS)
        if isinstance(value, str):
            return parse_band_list(value)
        return self.parameterAsInts(parameters, self.BANDS, context) or None

    def createInstance(self) -> SegmentAlgorithm:  # noqa: N802
        return SegmentAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "SAR layer"))
        bands = QgsProcessingParameterBand(
            self.BANDS, "Bands in the model's order (e.g. VV, VH)", None, self.INPUT, optional=True,
            allowMultiple=True,
        )  # fmt: skip
        bands.setHelp(
            "band numbers in the model's order: BANDS=2,1 or BANDS=2 BANDS=1; empty: found by the "
            "band descriptions (VV, VH), else the first bands"
        )
        self.addParameter(bands)
        self.addParameter(
            QgsProcessingParameterEnum(
                self.BUNDLED_MODEL, "Bundled model", [label for label, _, _ in self.BUNDLED], defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL, "Model file (instead of the bundled model)", extension="pt", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TILE_SIZE, "Tile size (pixels, 0 = automatic)", QgsProcessingParameterNumber.Integer, 0,
                minValue=TILE_SIZE_RANGE[0], maxValue=TILE_SIZE_RANGE[1],
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterNumber(
                self.OVERLAP, "Tile overlap (pixels)", QgsProcessingParameterNumber.Integer, DEFAULT_OVERLAP,
                minValue=OVERLAP_RANGE[0], maxValue=OVERLAP_RANGE[1],
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size (tiles, 0 = automatic)", QgsProcessingParameterNumber.Integer, 0,
                minValue=BATCH_SIZE_RANGE[0], maxValue=BATCH_SIZE_RANGE[1],
            )
        )  # fmt: skip
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", list(DEVICES), defaultValue=0))
        for name in (self.TILE_SIZE, self.OVERLAP, self.BATCH_SIZE, self.DEVICE):
            parameter = self.parameterDefinition(name)
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(
            QgsProcessingParameterEnum(
                self.INPUT_SCALE, "Input scale", list(INPUT_SCALE_LABELS), defaultValue=0
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Class map"))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.CONFIDENCE, "Confidence (percent)", optional=True, createByDefault=True
            )
        )
        self.addOutput(QgsProcessingOutputNumber("VALID_PIXELS", "Valid pixels"))

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802
        parameters = self.choices_as_numbers(parameters)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("INPUT is not a raster layer GDAL can read")
        check_outputs(self, parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        confidence = self.parameterAsOutputLayer(parameters, self.CONFIDENCE, context) or None
        progress, is_canceled = progress_callbacks(feedback, time_left=True)
        _, stem, what = self.BUNDLED[self.parameterAsEnum(parameters, self.BUNDLED_MODEL, context)]
        with core_errors():
            model = model_file(self, parameters, self.MODEL, context, stem)
            if self.parameterAsFile(parameters, self.MODEL, context):  # a fine-tuned model's map would
                what = Path(model).stem  # otherwise be named as the bundled model's
            from hfd_core.infer.tiled import segment_raster

            result = segment_raster(
                raster_path(layer),
                output,
                model,
                bands=self.band_numbers(parameters, context),
                tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
                overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context) or None,
                device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                input_scale=INPUT_SCALES[self.parameterAsEnum(parameters, self.INPUT_SCALE, context)],
                confidence_path=confidence,
                progress=progress,
                is_canceled=is_canceled,
            )
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(result.summary())
        name, run = f"{layer.name()} {what}", [output, confidence] if confidence else [output]
        StyleFromQml.attach(context, output, name, layer.id(), run, over=confidence)
        outputs = {self.OUTPUT: output, "VALID_PIXELS": result.valid_pixels}
        if confidence:
            StyleFromQml.attach(context, confidence, f"{name} confidence", layer.id(), run, expanded=False)
            outputs[self.CONFIDENCE] = confidence
        forget_skipped_outputs(context)
        return outputs
