"""A generic folder of GeoTIFF triplets: ``<name>_sar.tif``, optional ``<name>_eo.tif`` and
``<name>_label.tif`` (class ids 0..254; the file's nodata and 255 are nodata).

EO and label are brought onto the SAR grid when their grid differs (EO bilinear, label nearest), using only
the overlap (NaN / nodata elsewhere). Band names come from the band descriptions when the file has them, else
``VV, VH`` for a two-band SAR and ``band1, band2, ...`` otherwise. Group = the name up to ``__`` if present
(``site__2021`` and ``site__2022`` share a location), else the name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from hfd_core import IGNORE_INDEX
from hfd_core.data.raster import map_labels, read_float, read_label, same_grid, warp_to_grid
from hfd_core.data.scene import Scene

__all__ = ["read_triplet_folder", "warp_to_grid"]


def band_names(src: rasterio.io.DatasetReader, sar: bool) -> list[str]:
    if all(src.descriptions):
        return list(src.descriptions)
    if sar and src.count == 2:
        return ["VV", "VH"]
    return [f"band{i + 1}" for i in range(src.count)]


def _eo_on_grid(path: Path, grid: rasterio.io.DatasetReader) -> tuple[np.ndarray, list[str]]:
    with rasterio.open(path) as src:
        names, aligned = band_names(src, sar=False), same_grid(src, grid)
        count = src.count
    array = read_float(path) if aligned else warp_to_grid(path, grid, list(range(1, count + 1)))
    return array, names


def _label_on_grid(path: Path, grid: rasterio.io.DatasetReader) -> np.ndarray:
    with rasterio.open(path) as src:
        aligned, nodata = same_grid(src, grid), src.nodata
    if aligned:
        return read_label(path)
    values = warp_to_grid(path, grid, [1], resampling="nearest")[0]
    values = np.where(np.isfinite(values), values, IGNORE_INDEX).astype(np.int64)
    return map_labels(values, None, nodata)


def read_triplet_folder(root: str | Path) -> list[Scene]:
    scenes = []
    for sar_path in sorted(Path(root).glob("*_sar.tif")):
        name = sar_path.name.removesuffix("_sar.tif")
        eo_path, label_path = sar_path.with_name(f"{name}_eo.tif"), sar_path.with_name(f"{name}_label.tif")
        with rasterio.open(sar_path) as grid:
            sar_bands = band_names(grid, sar=True)
            eo, eo_bands = _eo_on_grid(eo_path, grid) if eo_path.is_file() else (None, [])
            label = _label_on_grid(label_path, grid) if label_path.is_file() else None
        scenes.append(
            Scene(
                name=name,
                group=name.split("__")[0],
                sar=read_float(sar_path),
                eo=eo,
                label=label,
                sar_bands=sar_bands,
                eo_bands=eo_bands,
            )
        )
    return scenes
