"""Small GeoTIFF helpers shared by the readers: read with nodata as NaN, warp onto another grid, burn class
polygons onto a grid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import WindowError
from rasterio.features import rasterize
from rasterio.io import DatasetReader
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from hfd_core import IGNORE_INDEX
from hfd_core.errors import InputError


def read_float(path: str | Path, bands: list[int] | None = None) -> np.ndarray:
    """(C, H, W) float32 with the file's nodata value turned into NaN."""
    with rasterio.open(path) as src:
        array = src.read(bands).astype(np.float32)
        if src.nodata is not None and not np.isnan(src.nodata):
            array[array == src.nodata] = np.nan
    return array


def read_label(path: str | Path, mapping: dict[int, int] | None = None) -> np.ndarray:
    """(H, W) uint8 class ids from band 1: ``mapping`` (value -> id) applied, unmapped and nodata values
    become IGNORE_INDEX; without a mapping values 0..254 are kept and the rest ignored."""
    with rasterio.open(path) as src:
        values = src.read(1).astype(np.int64)
        nodata = src.nodata
    return map_labels(values, mapping, nodata)


def map_labels(values: np.ndarray, mapping: dict[int, int] | None, nodata: float | None = None) -> np.ndarray:
    """Class ids (uint8) from raw label values; see ``read_label``."""
    label = np.full(values.shape, IGNORE_INDEX, np.uint8)
    if mapping is None:
        keep = (values >= 0) & (values < IGNORE_INDEX)
        label[keep] = values[keep]
    else:
        for value, class_id in mapping.items():
            label[values == value] = class_id
    if nodata is not None and not np.isnan(nodata):
        label[values == nodata] = IGNORE_INDEX
    return label


def warp_to_grid(
    path: str | Path, grid: DatasetReader, bands: list[int], resampling: str = "bilinear"
) -> np.ndarray:
    """Bands (1-based) of ``path`` reprojected onto the grid of the open dataset ``grid``: (C, H, W) float32,
    NaN where the source has no data (outside its footprint or its nodata)."""
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    with rasterio.open(path) as src:
        for index, band in enumerate(bands):
            reproject(
                rasterio.band(src, band),
                out[index],
                src_nodata=src.nodata,
                dst_transform=grid.transform,
                dst_crs=grid.crs,
                dst_nodata=np.nan,
                resampling=getattr(Resampling, resampling),
            )
    return out


def warp_to_grid_below(
    path: str | Path, grid: DatasetReader, bands: list[int], below: float, resampling: str = "bilinear"
) -> tuple[np.ndarray, float]:
    """``warp_to_grid``, with source pixels that hold a value below ``below`` in any band (a fill the file
    does not declare, such as -9999) nodata too, left out before resampling so no blend of them remains;
    and their share of the source window read (the grid's extent, with a margin for the resampling kernel).
    """
    out = np.full((len(bands), grid.height, grid.width), np.nan, np.float32)
    with rasterio.open(path) as src:
        bounds = transform_bounds(grid.crs, src.crs, *grid.bounds)
        exact = from_bounds(*bounds, transform=src.transform)  # fractional; 2 pixels of margin around it
        col, row = math.floor(exact.col_off) - 2, math.floor(exact.row_off) - 2
        width = math.ceil(exact.col_off + exact.width) + 2 - col
        height = math.ceil(exact.row_off + exact.height) + 2 - row
        try:
            window = Window(col, row, width, height).intersection(Window(0, 0, src.width, src.height))
        except WindowError:  # no overlap: all NaN, as warp_to_grid gives
            return out, 0.0
        data = src.read(bands, window=window).astype(np.float32)
        if src.nodata is not None and not np.isnan(src.nodata):
            data[data == src.nodata] = np.nan
        with np.errstate(invalid="ignore"):
            fill = (data < below).any(axis=0)
        data[:, fill] = np.nan
        for index in range(len(bands)):
            reproject(
                data[index],
                out[index],
                src_transform=src.window_transform(window),
                src_crs=src.crs,
                src_nodata=np.nan,
                dst_transform=grid.transform,
                dst_crs=grid.crs,
                dst_nodata=np.nan,
                resampling=getattr(Resampling, resampling),
            )
    return out, float(fill.mean())


def same_grid(a: DatasetReader, b: DatasetReader) -> bool:
    return a.crs == b.crs and a.transform.almost_equals(b.transform) and a.shape == b.shape


def burn_classes(
    shapes: list[tuple[dict, float]], grid_path: str | Path, output_path: str | Path, source: str
) -> str:
    """Burn (GeoJSON geometry in the grid's CRS, class id) pairs onto the grid of ``grid_path`` into a uint8
    GeoTIFF, ``IGNORE_INDEX`` where no shape lies (unlabelled, not a class); later shapes win where they
    overlap. Negative ids are nodata, as in a raster of class ids (Sen1Floods11's -1, polygonised). InputError
    when a class id is not a whole number or above IGNORE_INDEX - 1, or no shape has a class id; ``source``
    names where they came from in the message."""
    for _, value in shapes:
        if value != round(value) or value >= IGNORE_INDEX:
            raise InputError(f"class id {value:g} in {source} is not a whole number in 0..{IGNORE_INDEX - 1}")
    shapes = [(geometry, int(value)) for geometry, value in shapes if value >= 0]
    if not shapes:
        raise InputError(f"{source} has no polygon with a class id")
    with rasterio.open(grid_path) as grid:
        profile, shape, transform = grid.profile, grid.shape, grid.transform
    burnt = rasterize(shapes, out_shape=shape, transform=transform, fill=IGNORE_INDEX, dtype="uint8")
    profile.update(count=1, dtype="uint8", nodata=IGNORE_INDEX, compress="deflate", driver="GTiff")
    with rasterio.open(output_path, "w", **profile) as out:
        out.write(burnt[np.newaxis])
    return str(output_path)
