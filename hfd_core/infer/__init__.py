"""Inference: streaming tiled segmentation of rasters, styles and previews of the result."""
