"""Inference: streaming tiled segmentation of rasters, styles and previews of the result."""

#: Default overlap of neighbouring tiles (pixels), shared by ``segment_raster``, the CLI and ``hfd:segment``.
#: On a 1024-pixel mosaic of four Sen1Floods11 chips, with the CPU's 512-pixel tiles, the bundled land-cover
#: student (retrained 2026-12-05) gives the classes of one tile over the mosaic on 99.33 % of the pixels with
#: 96, against 98.65 % with 64 and 99.52 % with 128; a whole scene takes (448/416)^2 = 1.16 times the tiles
#: of 64 (bench/README.md). 64 was chosen for the student before (99.4 % with 512-pixel tiles).
DEFAULT_OVERLAP = 96
#: Allowed values of the tiling numbers, shared by ``segment_raster``, the CLI and ``hfd:segment``
#: (0 = automatic for the tile size, the model's, and the batch size, by device).
TILE_SIZE_RANGE = (0, 4096)
OVERLAP_RANGE = (0, 1024)
BATCH_SIZE_RANGE = (0, 512)
#: Input scales of SAR rasters: "auto" detects dB, linear power or amplitude (``hfd_core.data.sar``).
INPUT_SCALES = ("auto", "db", "linear", "amplitude")
#: How to give a model bands that lie in separate files (one band each, e.g. ``*_vv.tif`` and ``*_vh.tif``),
#: in the messages of ``data.bands`` and ``segment_raster`` and in hfd:segment's help.
STACK_HINT = (
    "bands in separate files: stack them first, in the model's order (gdalbuildvrt -separate stack.vrt "
    "vv.tif vh.tif, or in QGIS Raster > Miscellaneous > Merge with 'Place each input file into a separate "
    "band')"
)
#: Extensions of the class map and the confidence (both written as GeoTIFF), shared by ``segment_raster`` and
#: the provider.
OUTPUT_EXTENSIONS = ("tif", "tiff")
