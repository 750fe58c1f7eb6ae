"""The plugin object and its Processing provider inside QGIS (pytest-qgis)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication

REPO = Path(__file__).resolve().parents[1]


def test_provider_is_registered_with_its_algorithms(processing_provider):
    provider = QgsApplication.processingRegistry().providerById("hfd")
    assert provider is processing_provider
    assert provider.name() == "HFD-Net SAR segmentation"
    assert Path(provider.svgIconPath()).is_file()
    assert {a.id() for a in provider.algorithms()} == {"hfd:segment", "hfd:finetune", "hfd:evaluate"}
    assert (
        QgsApplication.processingRegistry().algorithmById("hfd:segment").displayName() == "Segment SAR layer"
    )


def test_segment_parameters_match_the_documented_interface(processing_provider):
    algorithm = QgsApplication.processingRegistry().algorithmById("hfd:segment")
    names = {p.name() for p in algorithm.parameterDefinitions()}
    assert {
        "INPUT",
        "BANDS",
        "BUNDLED_MODEL",
        "MODEL",
        "TILE_SIZE",
        "OVERLAP",
        "BATCH_SIZE",
        "DEVICE",
        "OUTPUT",
        "CONFIDENCE",
    } <= names
    bundled = algorithm.parameterDefinition("BUNDLED_MODEL")
    assert bundled.options() == ["Land cover", "Water"] and bundled.defaultValue() == 0
    for _, stem, _ in algorithm.BUNDLED:  # every choice has its file
        assert (REPO / "resources" / "models" / f"{stem}.pt").is_file()
    assert algorithm.parameterDefinition("MODEL").defaultValue() is None  # a file replaces the bundled model
    assert "dB" in algorithm.shortHelpString()


def test_metadata_declares_a_processing_provider():
    metadata = (REPO / "metadata.txt").read_text()
    assert "hasProcessingProvider=yes" in metadata
    icon = next(line.split("=", 1)[1] for line in metadata.splitlines() if line.startswith("icon="))
    assert (REPO / icon).is_file()


def test_plugin_registers_and_unregisters_provider_and_menu(processing_provider, qgis_iface):
    """With the session's `hfd` provider already registered, the plugin must not break it (QGIS refuses a
    duplicate id and deletes the refused object); the menu action is added and removed all the same."""
    import hfd_qgis

    registry = QgsApplication.processingRegistry()
    plugin = hfd_qgis.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert plugin.provider is None
        assert registry.providerById("hfd") is processing_provider
        assert plugin.finetune_action.text().startswith("Fine-tune SAR model")
        assert [a.text() for a in plugin.actions] == ["Segment SAR layer…", plugin.finetune_action.text()]
    finally:
        plugin.unload()
    assert plugin.finetune_action is None and plugin.actions == []
    assert registry.providerById("hfd") is processing_provider
    assert registry.algorithmById("hfd:segment") is not None
