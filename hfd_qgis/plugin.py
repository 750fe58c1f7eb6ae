"""The plugin object QGIS creates: registers the Processing provider (desktop and qgis_process)."""

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
        self.finetune_action: QAction | None = None
        self.finetune_dialog = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Register the provider; QGIS refuses (and deletes) it when an `hfd` provider is already there."""
        provider = HFDProvider()
        self.provider = provider if QgsApplication.processingRegistry().addProvider(provider) else None

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        self.finetune_action = QAction(
            QIcon(icon_path()), "Fine-tune SAR model with EO reference…", self.iface.mainWindow()
        )
        self.finetune_action.triggered.connect(self.show_finetune_dialog)
        self.iface.addPluginToMenu(MENU, self.finetune_action)
        self.iface.addToolBarIcon(self.finetune_action)

    def show_finetune_dialog(self) -> None:
        """One dialog for the session: closing it hides it, so a running fine-tuning job stays visible."""
        if self.finetune_dialog is None:
            from hfd_qgis.gui.finetune_dialog import FinetuneDialog

            self.finetune_dialog = FinetuneDialog(self.iface.mainWindow())
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()
        self.finetune_dialog.activateWindow()

    def unload(self) -> None:
        if self.finetune_action is not None:
            self.iface.removePluginMenu(MENU, self.finetune_action)
            self.iface.removeToolBarIcon(self.finetune_action)
            self.finetune_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
