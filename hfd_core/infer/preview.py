"""PNG preview of a segmentation: the SAR input (VV, stretched) beside the coloured classes, with a legend.

Reads decimated overviews (at most ``MAX_SIDE`` pixels a side), so it is quick on any raster size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from rasterio.enums import Resampling

from hfd_core import IGNORE_INDEX
from hfd_core.errors import InputError

MAX_SIDE = 1024
BACKGROUND = (255, 255, 255)


def _shape(src: rasterio.io.DatasetReader) -> tuple[int, int]:
    scale = min(1.0, MAX_SIDE / max(src.height, src.width))
    return max(1, round(src.height * scale)), max(1, round(src.width * scale))


def _classes_rgb(path: Path) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int]]]]:
    with rasterio.open(path) as src:
        names = json.loads(src.tags().get("CLASS_NAMES", "[]"))
        if not names:
            raise InputError(
                f"{path} is not a class map written by segment (no CLASS_NAMES tag): give the segmentation, "
                "and the SAR raster with --input"
            )
        classes = src.read(1, out_shape=_shape(src), resampling=Resampling.nearest)
        cmap = src.colormap(1)
    rgb = np.full((*classes.shape, 3), BACKGROUND, np.uint8)
    legend = []
    for value in range(len(names)):
        color = tuple(cmap.get(value, (128, 128, 128, 255))[:3])
        rgb[classes == value] = color
        legend.append((names[value], color))
    rgb[classes == IGNORE_INDEX] = BACKGROUND
    return rgb, legend


def _sar_gray(path: Path, shape: tuple[int, int]) -> np.ndarray:
    with rasterio.open(path) as src:
        band = src.read(1, out_shape=shape, resampling=Resampling.average, masked=True).astype(np.float32)
    values = band.filled(np.nan)
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    gray = np.clip((values - low) / max(high - low, 1e-6), 0, 1)
    gray = np.where(np.isfinite(gray), gray * 255, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def write_preview_png(segmentation: str | Path, png: str | Path, sar_input: str | Path | None = None) -> Path:
    classes, legend = _classes_rgb(Path(segmentation))
    panels = [classes] if sar_input is None else [_sar_gray(Path(sar_input), classes.shape[:2]), classes]
    height, gap, row = classes.shape[0], 8, 18
    legend_height = row * len(legend) + gap
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, height + legend_height), BACKGROUND)
    x = 0
    for panel in panels:
        canvas.paste(Image.fromarray(panel), (x, 0))
        x += panel.shape[1] + gap
    draw = ImageDraw.Draw(canvas)
    for index, (name, color) in enumerate(legend):
        top = height + gap + index * row
        draw.rectangle((4, top, 18, top + 12), fill=color, outline=(0, 0, 0))
        draw.text((24, top), name, fill=(0, 0, 0))
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(png)
    return png
