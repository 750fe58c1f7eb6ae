"""Class styling: a GDAL colour table and a QGIS ``.qml`` paletted style from the model's classes."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from hfd_core.modelfile import ClassInfo


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


def colormap(classes: list[ClassInfo]) -> dict[int, tuple[int, int, int, int]]:
    """{class id: (r, g, b, 255)} for rasterio's ``write_colormap``."""
    return {c.id: (*hex_to_rgb(c.color), 255) for c in classes}


def qml_text(classes: list[ClassInfo], band: int = 1) -> str:
    """A QGIS style: paletted renderer with one entry per class (nodata stays transparent)."""
    entries = "\n".join(
        f'          <paletteEntry value="{c.id}" color="{c.color.lower()}" alpha="255" '
        f"label={quoteattr(c.name)}/>"
        for c in classes
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" opacity="1" alphaBand="-1" band="{band}" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <colorPalette>
{entries}
      </colorPalette>
      <colorramp type="randomcolors" name="[source]"/>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" colorizeOn="0" grayscaleMode="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def write_qml(path: str | Path, classes: list[ClassInfo]) -> Path:
    """Write the style; ``path`` is the style file itself (``x.qml`` beside ``x.tif``)."""
    path = Path(path)
    path.write_text(qml_text(classes), encoding="utf-8")
    return path
