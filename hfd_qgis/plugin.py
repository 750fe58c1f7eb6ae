"""The plugin object QGIS creates: registers the Processing provider (desktop and qgis_process) and, in the
desktop, a "HFD-Net SAR segmentation" submenu of the Raster menu (the algorithms' category) and toolbar
buttons: Segment SAR layer (the Processing dialog) and the fine-tuning dialog."""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from hfd_qgis.paths import icon_path
from hfd_qgis.provider import HFDProvider

MENU = "HFD-Net SAR segmentation"


class HFDPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: HFDProvider | None = None
        self.actions: list[QAction] = []
        self.finetune_action: QAction | None = None
        self.finetune_dialog = None
        self.segment_dialog = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Register the provider; QGIS refuses (and deletes) it when an `hfd` provider is already there."""
        provider = HFDProvider()
        self.provider = provider if QgsApplication.processingRegistry().addProvider(provider) else None

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        segment_action = QAction(QIcon(icon_path("segment")), "Segment SAR layer…", self.iface.mainWindow())
        segment_action.triggered.connect(self.show_segment_dialog)
        self.finetune_action = QAction(
            QIcon(icon_path("finetune")), "Fine-tune SAR model with EO reference…", self.iface.mainWindow()
        )
        self.finetune_action.triggered.connect(self.show_finetune_dialog)
        self.actions = [segment_action, self.finetune_action]
        for action in self.actions:
            self.iface.addPluginToRasterMenu(MENU, action)
            self.iface.addToolBarIcon(action)

    def show_segment_dialog(self) -> None:
        """The Processing dialog of hfd:segment, as the toolbox opens it (non-modal)."""
        from processing import createAlgorithmDialog

        self.segment_dialog = createAlgorithmDialog("hfd:segment", {})
        self.segment_dialog.show()

    def show_finetune_dialog(self) -> None:
        """One dialog for the session: closing it hides it, so a running fine-tuning job stays visible."""
        if self.finetune_dialog is None:
            from hfd_qgis.gui.finetune_dialog import FinetuneDialog

            self.finetune_dialog = FinetuneDialog(self.iface.mainWindow())
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()
        self.finetune_dialog.activateWindow()

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
        self.actions = []
        self.finetune_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
