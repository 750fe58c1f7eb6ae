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


def _style(renderer_attributes: str, body: str) -> str:
    """A QGIS raster style (.qml) with one renderer: ``<rasterrenderer {renderer_attributes}>``, ``body``."""
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <pipe>
    <rasterrenderer {renderer_attributes} opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
{body}
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" colorizeOn="0" grayscaleMode="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def qml_text(classes: list[ClassInfo], band: int = 1) -> str:
    """A QGIS style: paletted renderer with one entry per class (nodata stays transparent)."""
    entries = "\n".join(
        f'          <paletteEntry value="{c.id}" color="{c.color.lower()}" alpha="255" '
        f"label={quoteattr(c.name)}/>"
        for c in classes
    )
    body = f"""      <colorPalette>
{entries}
      </colorPalette>
      <colorramp type="randomcolors" name="[source]"/>"""
    return _style(f'type="paletted" band="{band}"', body)


def write_qml(path: str | Path, classes: list[ClassInfo]) -> Path:
    """Write the style; ``path`` is the style file itself (``x.qml`` beside ``x.tif``)."""
    path = Path(path)
    path.write_text(qml_text(classes), encoding="utf-8")
    return path


def write_confidence_qml(path: str | Path, num_classes: int) -> Path:
    """Write the confidence style (``confidence_qml_text``) to ``path``."""
    path = Path(path)
    path.write_text(confidence_qml_text(num_classes), encoding="utf-8")
    return path


#: Sequential ramp of the confidence style (ColorBrewer YlGnBu): pale where the model hesitates, dark blue
#: where it is sure.
CONFIDENCE_RAMP = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")


def confidence_qml_text(num_classes: int) -> str:
    """A QGIS style for the confidence raster (percent): the ramp from ``100 / num_classes`` (the least a
    winning class can have) to 100, interpolated, with a legend entry per colour."""
    low = 100 // max(num_classes, 1)
    steps = len(CONFIDENCE_RAMP) - 1
    values = [round(low + (100 - low) * i / steps) for i in range(steps + 1)]
    items = "\n".join(
        f'          <item alpha="255" value="{value}" color="{color}" label="{value} %"/>'
        for value, color in zip(values, CONFIDENCE_RAMP, strict=True)
    )
    body = f"""      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0"
            minimumValue="{low}" maximumValue="100" labelPrecision="0">
{items}
        </colorrampshader>
      </rastershader>"""
    attributes = f'type="singlebandpseudocolor" band="1" classificationMin="{low}" classificationMax="100"'
    return _style(attributes, body)
