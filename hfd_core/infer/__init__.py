"""Inference: streaming tiled segmentation of rasters, styles and previews of the result."""

#: Default overlap of neighbouring tiles (pixels), shared by ``segment_raster``, the CLI and ``hfd:segment``.
#: A quarter of the default 256-pixel tile: on a 1024-pixel mosaic of the Sen1Floods11 chips the bundled
#: student's classes agree with one tile over the mosaic on 99.1% of the pixels, against 97.4% with an overlap
#: of 32, for (224/192)^2 = 1.36 times the tiles of a large raster.
DEFAULT_OVERLAP = 64
#: Allowed values of the tiling numbers, shared by ``segment_raster``, the CLI and ``hfd:segment``
#: (0 = automatic for the tile size, the model's, and the batch size, by device).
TILE_SIZE_RANGE = (0, 4096)
OVERLAP_RANGE = (0, 1024)
BATCH_SIZE_RANGE = (0, 512)
#: Input scales of SAR rasters: "auto" detects dB, linear power or amplitude (``hfd_core.data.sar``).
INPUT_SCALES = ("auto", "db", "linear", "amplitude")
