"""hfd:segment "Segment SAR layer": land-cover map of a SAR raster with an HFD-Net student model."""

from __future__ import annotations

import html
import uuid
from pathlib import Path

from qgis.core import (
    QgsLayerTreeGroup,
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
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QIcon

from hfd_core.files import same_file
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
    bundled_model,
    check_outputs,
    core_errors,
    model_file,
    parse_band_list,
    progress_callbacks,
)
from hfd_qgis.label_layers import layer_file, raster_path
from hfd_qgis.paths import icon_path, model_card_path

INPUT_SCALE_LABELS = (
    "Detect (dB, linear power or amplitude)",
    "dB (sigma0 in decibels)",
    "Linear power",
    "Amplitude (square root of power)",
)


class StyleFromQml(QgsProcessingLayerPostProcessorInterface):
    """Applies the ``.qml`` written beside the output GeoTIFF when QGIS loads a result of hfd:segment, tags
    the layer with its run and the input file it was segmented from, places it, and makes the input layer
    (``input_id``) the active one again.

    QGIS 3.22 loads outputs in the order of their paths (random for temporary outputs) and inserts each above
    the active layer, which it then makes the new layer; the Processing dialog starts from the active layer,
    but a class map is no SAR input, so the input is made active again. Inserted above it, a second run's
    outputs went under the first run's, which still hid them (a user's desktop audit). So the class map goes
    directly above its run's confidence, the confidence directly below its run's class map, and the first of
    the two to load above the topmost layer of the input's stack (the input and the earlier outputs tagged
    with its file), in that layer's group, unless QGIS put it higher (above a layer the user selected: moved
    down, it went under that layer and out of sight); inside Processing's results group, when one is set,
    only there. Newest on top, each run's class map above its confidence, whatever the load order and
    whether the input was a project layer or a file. The class map's legend is expanded, the confidence's
    ramp collapsed.
    """

    instances: list[StyleFromQml] = []  # QGIS does not own post-processors: keep them alive
    #: Layer properties: the file an output was segmented from, and the run that wrote it.
    SEGMENTED_FROM = "hfd/segmented_from"
    RUN = "hfd/run"

    def __init__(self, qml: str, input_id: str, input_file: str, run: str, is_confidence: bool):
        super().__init__()
        self.qml = qml
        self.input_id = input_id
        self.input_file = input_file
        self.run = run
        self.is_confidence = is_confidence

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 (QGIS API name)
        if layer is None:
            return
        if Path(self.qml).is_file():
            layer.loadNamedStyle(self.qml)
            layer.triggerRepaint()
        layer.setCustomProperty(self.SEGMENTED_FROM, self.input_file)
        layer.setCustomProperty(self.RUN, self.run)
        project = QgsProject.instance()
        node = project.layerTreeRoot().findLayer(layer.id())
        if node is None:
            return
        place = self._place(node, project.layerTreeRoot())
        if place is not None:
            anchor, below = place
            parent, moved = anchor.parent(), node.clone()
            parent.insertChildNode(parent.children().index(anchor) + below, moved)
            node.parent().removeChildNode(node)
            node = moved
        node.setExpanded(not self.is_confidence)
        from qgis.utils import iface

        if iface is not None and project.mapLayer(self.input_id) is not None:
            iface.setActiveLayer(project.mapLayer(self.input_id))

    def _place(
        self, node: QgsLayerTreeLayer, root: QgsLayerTreeGroup
    ) -> tuple[QgsLayerTreeLayer, int] | None:
        """(anchor, 0) to go directly above the anchor, (anchor, 1) directly below it, None to stay."""
        from processing.core.ProcessingConfig import ProcessingConfig

        results_group = ProcessingConfig.getSetting(ProcessingConfig.RESULTS_GROUP_NAME)
        in_results_group = bool(results_group) and node.parent() is root.findGroup(results_group)
        scope = node.parent() if in_results_group else root
        ordered = scope.findLayers()  # top to bottom
        others = [(other, other.layer()) for other in ordered if other is not node and other.layer()]
        partner = next((other for other, layer in others if layer.customProperty(self.RUN) == self.run), None)
        if partner is not None:
            return partner, int(self.is_confidence)
        stack = (
            other
            for other, layer in others
            if self.input_file in (layer.customProperty(self.SEGMENTED_FROM), layer_file(layer))
            or layer.id() == self.input_id
        )
        top = next(stack, None)
        ids = [other.layerId() for other in ordered]
        if top is None or ids.index(top.layerId()) > ids.index(node.layerId()):
            return None  # never down: QGIS put it above the selected layer, over the input's stack
        return top, 0

    @classmethod
    def attach(
        cls,
        context: QgsProcessingContext,
        output: str,
        name: str,
        input_layer: QgsRasterLayer,
        run: str,
        is_confidence: bool = False,
    ) -> None:
        """Style the layer QGIS loads from ``output`` with the ``.qml`` beside it and call it ``name`` (QGIS
        still names a layer after its file when the user typed one and prefers file names); ``run``: an id
        shared by the run's outputs."""
        if context.willLoadLayerOnCompletion(output):
            qml = str(Path(output).with_suffix(".qml"))
            processor = cls(qml, input_layer.id(), raster_path(input_layer), run, is_confidence)
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


#: Logged after a land-cover run: users who want water often run the default model and read its class 0.
WATER_HINT = (
    "To map water or floods, choose Bundled model: Water (BUNDLED_MODEL=water). This land-cover model learnt "
    "water from spectral rules and finds little of it: water IoU 0.09 on the Sen1Floods11 chip India_900498, "
    "which it never trained on (README, hfd:evaluate); the water model's recipe, trained without that chip, "
    "0.76 (WATER_MODEL_CARD.md)."
)


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
            'colour table and a .qml style beside it; loaded as "&lt;input&gt; land cover", "&lt;input&gt; '
            'water" or, with a model file, "&lt;input&gt; &lt;file name&gt;", on top of the earlier results '
            "of the input. <b>Confidence</b> (optional): the probability of the chosen class in percent, "
            'styled with a colour ramp, loaded under its map as "&lt;map&gt; confidence". A full '
            "Sentinel-1 scene takes about 10 minutes on 2 CPU cores.<br><br>"
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

    def map_name(self, model: str) -> str:
        """What a map is called after its input: a bundled model's word ("water"), another model file's name
        (a fine-tuned model's map was named as the bundled land cover)."""
        bundled = (word for _, stem, word in self.BUNDLED if same_file(model, bundled_model(stem)))
        return next(bundled, Path(model).stem)

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802
        parameters = self.choices_as_numbers(parameters)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("SAR layer [INPUT] is not a raster layer GDAL can read")
        check_outputs(self, parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        confidence = self.parameterAsOutputLayer(parameters, self.CONFIDENCE, context) or None
        progress, is_canceled = progress_callbacks(feedback, time_left=True)
        stem = self.BUNDLED[self.parameterAsEnum(parameters, self.BUNDLED_MODEL, context)][1]
        with core_errors():
            model = model_file(self, parameters, self.MODEL, context, stem)
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
        map_name = self.map_name(model)
        if map_name == "land cover":
            feedback.pushInfo(WATER_HINT)
        name, run = f"{layer.name()} {map_name}", uuid.uuid4().hex
        StyleFromQml.attach(context, output, name, layer, run)
        outputs = {self.OUTPUT: output, "VALID_PIXELS": result.valid_pixels}
        if confidence:
            StyleFromQml.attach(context, confidence, f"{name} confidence", layer, run, is_confidence=True)
            outputs[self.CONFIDENCE] = confidence
        forget_skipped_outputs(context)
        return outputs
