"""The plugin object QGIS creates: registers the Processing provider (desktop and qgis_process)."""

from __future__ import annotations

from qgis.core import QgsApplication

from hfd_qgis.provider import HFDProvider


class HFDPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: HFDProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        self.provider = HFDProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
