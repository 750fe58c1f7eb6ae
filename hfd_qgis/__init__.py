"""QGIS plugin entry point for HFD-Net SAR segmentation."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    from hfd_qgis.dependencies import add_dependency_paths

    add_dependency_paths()
    from hfd_qgis.plugin import HFDPlugin

    return HFDPlugin(iface)
