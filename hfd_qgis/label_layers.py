"""Label/reference layers for fine-tuning and evaluation: a class-id raster, or polygons burnt onto a grid.

A class-field parameter whose parent may be a raster crashes QGIS 3.22's dialog
(``QgsProcessingFieldWidgetWrapper::setParentLayerWrapperValue`` treats the parent as a vector layer). So
hfd:finetune takes its optional labels as two separate parameters, a raster or polygons with their field
(``class_layer`` checks that at most one is given), and hfd:evaluate its required reference as one layer with
the field as plain text (``only_numeric_field`` when it is left empty).

Polygons are reprojected to the grid raster's CRS with QGIS and burnt by ``hfd_core.data.raster.burn_classes``
into a temporary uint8 GeoTIFF on that grid: class ids from a numeric field, ``IGNORE_INDEX`` where no polygon
lies (unlabelled, not a class).
"""

from __future__ import annotations

import json
from pathlib import Path

from qgis.core import (
    NULL,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterField,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from hfd_core import IGNORE_INDEX
from hfd_core.errors import InputError


def rasterize_polygons(layer: QgsVectorLayer, field: str, grid_path: str, output_path: str) -> str:
    """Burn ``layer``'s polygons with the class id in ``field`` onto the grid of ``grid_path``."""
    index = layer.fields().indexOf(field)
    if index < 0:
        raise InputError(f"the label layer {layer.name()} has no field {field!r}")
    if not layer.fields().at(index).isNumeric():
        raise InputError(
            f"the field {field!r} of {layer.name()} holds {layer.fields().at(index).typeName()} values, not "
            f"numbers: choose a numeric field with class ids 0..{IGNORE_INDEX - 1}"
        )
    from hfd_core.data.raster import burn_classes  # hfd_core.data needs torch: only when running

    to_grid = QgsCoordinateTransform(layer.crs(), QgsRasterLayer(grid_path).crs(), QgsProject.instance())
    shapes = []
    for feature in layer.getFeatures():
        value, geometry = feature[field], feature.geometry()
        if value is None or value == NULL or geometry.isEmpty():  # an empty field is NULL, not None
            continue
        geometry.transform(to_grid)
        shapes.append((json.loads(geometry.asJson()), float(value)))
    return burn_classes(shapes, grid_path, output_path, f"the field {field!r} of {layer.name()}")


def class_layer_parameters(
    raster: str, polygons: str, field: str, what: str
) -> list[QgsProcessingParameterDefinition]:
    """Optional parameters for class ids given as a raster or as polygons with a numeric class field; ``what``
    (e.g. "Labels") starts their descriptions."""
    return [
        QgsProcessingParameterRasterLayer(raster, f"{what}: class-id raster", optional=True),
        QgsProcessingParameterVectorLayer(
            polygons,
            f"{what}: polygons (instead of a raster)",
            [QgsProcessing.TypeVectorPolygon],
            optional=True,
        ),
        QgsProcessingParameterField(
            field,
            f"Class-id field of the {what.lower()} polygons",
            parentLayerParameterName=polygons,
            type=QgsProcessingParameterField.Numeric,
            optional=True,
        ),
    ]


def class_layer(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict,
    context: QgsProcessingContext,
    names: tuple[str, str],
    what: str,
) -> QgsMapLayer | None:
    """The layer given to the (raster, polygons) parameters ``names`` of ``class_layer_parameters``, or None;
    InputError when both are given. ``what`` names the pair in messages, e.g. "labels"."""
    raster = algorithm.parameterAsRasterLayer(parameters, names[0], context)
    polygons = algorithm.parameterAsVectorLayer(parameters, names[1], context)
    if raster is not None and polygons is not None:
        raise InputError(f"give the {what} as a raster or as polygons, not both")
    return raster if raster is not None else polygons


def label_raster(layer: QgsMapLayer, field: str | None, grid_path: str, folder: str) -> str:
    """Path of a class-id raster for ``layer``: its own file, or its polygons rasterised into ``folder``."""
    if isinstance(layer, QgsRasterLayer):
        return raster_path(layer)
    if isinstance(layer, QgsVectorLayer):
        if not field:
            raise InputError(f"choose the field of {layer.name()} that holds the class ids")
        return rasterize_polygons(layer, field, grid_path, str(Path(folder) / f"{layer.id()}_labels.tif"))
    raise InputError(f"{layer.name()} is neither a raster nor a polygon layer")


def only_numeric_field(layer: QgsVectorLayer) -> str:
    """The one numeric field of ``layer`` besides its primary key (a GeoPackage's ``fid``); InputError naming
    the candidates when there are none or several."""
    keys = set(layer.primaryKeyAttributes())
    numeric = [f.name() for i, f in enumerate(layer.fields()) if f.isNumeric() and i not in keys]
    if len(numeric) != 1:
        found = f"numeric fields {', '.join(numeric)}" if numeric else "no numeric field"
        raise InputError(f"{layer.name()} has {found}: give the class-id field")
    return numeric[0]


def layer_file(layer: QgsMapLayer) -> str:
    """The file part of a layer's source (OGR and GDAL sources may add ``|layername=...`` and such)."""
    return layer.source().split("|")[0]


def raster_path(layer: QgsRasterLayer) -> str:
    """File path of a file-based raster layer (InputError for web or database layers)."""
    path = layer_file(layer)
    if not Path(path).is_file():
        raise InputError(f"the layer {layer.name()} is not a raster file on disk ({layer.source()})")
    return path
