"""Processing provider `hfd`: every algorithm of the plugin."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from hfd_core.infer import OUTPUT_EXTENSIONS
from hfd_qgis.paths import icon_path


class HFDProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "hfd"

    def name(self) -> str:
        return "HFD-Net SAR segmentation"

    def longName(self) -> str:  # noqa: N802
        return "HFD-Net SAR semantic segmentation (heterogeneous feature distillation)"

    def icon(self) -> QIcon:
        return QIcon(icon_path())

    def svgIconPath(self) -> str:  # noqa: N802
        return icon_path()

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        """The class map and the confidence are written as GeoTIFF, whatever the name: a file named ``.png``
        was a GeoTIFF under a wrong name. The dialog offers .tif and .tiff only (``segment_raster`` refuses
        the rest, which qgis_process lets through)."""
        return list(OUTPUT_EXTENSIONS)

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm_class in algorithm_classes():
            self.addAlgorithm(algorithm_class())


def algorithm_classes() -> list[type]:
    """The algorithm classes, imported lazily so a missing torch only affects running them."""
    from hfd_qgis.evaluate_algorithm import EvaluateAlgorithm
    from hfd_qgis.finetune_algorithm import FinetuneAlgorithm
    from hfd_qgis.segment_algorithm import SegmentAlgorithm

    return [SegmentAlgorithm, FinetuneAlgorithm, EvaluateAlgorithm]
