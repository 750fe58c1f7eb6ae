"""HFD-Net core: networks, losses, data, training, metrics and tiled inference for SAR segmentation.

Nothing in this package imports QGIS; it is usable from Python and from ``python -m hfd_core``.
"""

__version__ = "0.1.0"

#: Class id used for nodata in label rasters and in segmentation outputs.
IGNORE_INDEX = 255
