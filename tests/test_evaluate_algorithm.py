"""hfd:evaluate: class raster vs a reference raster (another grid) or polygons; HTML and CSV outputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from recording_feedback import Feedback

UTM = "EPSG:32633"
ORIGIN = (500000, 4000040)


def _write(path, array, transform, nodata=None):
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1, dtype=array.dtype)
    with rasterio.open(path, "w", crs=UTM, transform=transform, nodata=nodata, **profile) as dst:
        dst.write(array[np.newaxis])
    return str(path)


@pytest.fixture
def prediction(tmp_path):
    """40 x 40 at 10 m: class 0 in the left half, class 1 in the right half."""
    classes = np.zeros((40, 40), np.uint8)
    classes[:, 20:] = 1
    return _write(tmp_path / "pred.tif", classes, from_origin(*ORIGIN, 10, 10), nodata=255)


def _run(parameters, feedback=None):
    from qgis.core import QgsProcessingContext, QgsProject

    from hfd_qgis.evaluate_algorithm import EvaluateAlgorithm

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results, ok = EvaluateAlgorithm().create().run(parameters, context, feedback or Feedback())
    return results if ok else None


def _outputs(tmp_path) -> dict:
    return {"OUTPUT_HTML": str(tmp_path / "r.html"), "OUTPUT_CSV": str(tmp_path / "t.csv")}


def _polygons(field_type: str = "integer", value=1):
    """A memory layer with one polygon over the prediction's top 10 rows."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer(f"Polygon?crs=EPSG:32633&field=cls:{field_type}", "reference", "memory")
    feature = QgsFeature(layer.fields())
    x, y = ORIGIN
    feature.setGeometry(
        QgsGeometry.fromWkt(f"POLYGON(({x} {y},{x + 400} {y},{x + 400} {y - 100},{x} {y - 100},{x} {y}))")
    )
    feature["cls"] = value
    layer.dataProvider().addFeatures([feature])
    return layer


def test_reference_raster_on_a_coarser_grid(qgis_app, prediction, tmp_path):
    reference = np.zeros((20, 20), np.uint8)
    reference[:, 5:] = 1  # boundary at 100 m from the west edge, the prediction's is at 200 m
    path = _write(tmp_path / "ref.tif", reference, from_origin(*ORIGIN, 20, 20))
    results = _run(
        {
            "PREDICTION": prediction,
            "REFERENCE": path,
            "CLASS_NAMES": "land, water",
            "OUTPUT_HTML": str(tmp_path / "report.html"),
            "OUTPUT_CSV": str(tmp_path / "table.csv"),
        }
    )
    # columns 10..19 are reference water but predicted land: OA 0.75, IoU land 10/20, water 20/30
    assert results["OA"] == pytest.approx(0.75)
    assert results["MIOU"] == pytest.approx((0.5 + 2 / 3) / 2)
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [r["class_name"] for r in rows] == ["land", "water"]
    assert rows[1]["predicted_0"] == str(10 * 40)
    assert "Cohen" in (tmp_path / "report.html").read_text()


def test_reference_polygons(qgis_app, prediction, tmp_path):
    # the top 10 rows are water (1) in the reference; the rest is unlabelled
    parameters = {"PREDICTION": prediction, "REFERENCE": _polygons(), "REFERENCE_FIELD": "cls"}
    results = _run({**parameters, **_outputs(tmp_path)})
    assert results["OA"] == pytest.approx(0.5)  # 400 labelled pixels, half predicted water


def test_a_text_class_field_is_refused_with_a_message(qgis_app, prediction, tmp_path):
    parameters = {
        "PREDICTION": prediction,
        "REFERENCE": _polygons("string", "1"),
        "REFERENCE_FIELD": "cls",
    }
    feedback = Feedback()
    assert _run({**parameters, **_outputs(tmp_path)}, feedback) is None
    assert any("not numbers: choose a numeric field" in line for line in feedback.lines)


def test_the_only_numeric_field_is_the_class_field_by_default(qgis_app, prediction, tmp_path):
    results = _run({"PREDICTION": prediction, "REFERENCE": _polygons(), **_outputs(tmp_path)})
    assert results["OA"] == pytest.approx(0.5)


def test_a_geopackage_of_polygonised_labels_by_default(qgis_app, prediction, tmp_path):
    """`gdal_polygonize.py label.tif -f GPKG ref.gpkg` gives fields fid and the class: "has numeric fields
    fid, cls: give the class-id field", and its -1 (nodata) polygons were refused as class ids. The key is not
    a class field, and -1 is nodata as in the raster, as is a polygon without a class."""
    from qgis.core import NULL, QgsGeometry, QgsVectorFileWriter, QgsVectorLayer

    layer = _polygons()
    feature = next(layer.getFeatures())
    x, y = ORIGIN
    feature.setGeometry(
        QgsGeometry.fromWkt(
            f"POLYGON(({x} {y - 100},{x + 400} {y - 100},{x + 400} {y - 200},{x} {y - 200},{x} {y - 100}))"
        )
    )
    feature["cls"] = -1
    layer.dataProvider().addFeatures([feature])
    feature["cls"] = NULL  # an empty class field (it crashed: int() of a QVariant)
    layer.dataProvider().addFeatures([feature])
    path = str(tmp_path / "reference.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    QgsVectorFileWriter.writeAsVectorFormatV3(layer, path, layer.transformContext(), options)
    reference = QgsVectorLayer(path, "reference")
    assert [f.name() for f in reference.fields()] == ["fid", "cls"]
    feedback = Feedback()
    results = _run({"PREDICTION": prediction, "REFERENCE": path, **_outputs(tmp_path)}, feedback)
    assert results is not None, feedback.lines
    assert results["OA"] == pytest.approx(0.5)  # the water polygon alone, as with the memory layer


def test_the_reference_is_required(qgis_app, prediction, tmp_path):
    feedback = Feedback()
    assert _run({"PREDICTION": prediction, **_outputs(tmp_path)}, feedback) is None


def test_the_segmentation_as_its_own_reference_is_refused(qgis_app, prediction, tmp_path):
    """The dialog fills both layers with the active one: a run with its defaults scored a map against itself,
    every score 1."""
    feedback = Feedback()
    assert _run({"PREDICTION": prediction, "REFERENCE": prediction, **_outputs(tmp_path)}, feedback) is None
    assert any("the segmentation and the reference are the same file" in line for line in feedback.lines)
    assert not (tmp_path / "r.html").exists()


def test_one_class_against_the_rest_with_a_mapping(qgis_app, prediction, tmp_path):
    # reference with its own ids: 7 water (left half), 3 land; the prediction's 0 is "land", 1 "water"
    reference = np.full((40, 40), 3, np.uint8)
    reference[:, :20] = 7
    path = _write(tmp_path / "ref.tif", reference, from_origin(*ORIGIN, 10, 10))
    parameters = {"PREDICTION": prediction, "REFERENCE": path, "CLASS_NAMES": "land, water"}
    feedback = Feedback()
    assert _run({**parameters, **_outputs(tmp_path)}, feedback) is None  # 3 and 7 are not classes
    assert any("no pixel has a valid class" in line and "7: land" in line for line in feedback.lines)
    binary = _run({**parameters, "ONE_CLASS": "Water", "CLASS_MAPPING": "3: water", **_outputs(tmp_path)})
    assert binary["OA"] == 1.0 and binary["MIOU"] == 1.0
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert [r["class_name"] for r in rows] == ["water", "not water"]


def test_a_class_in_neither_map_reads_n_a(qgis_app, tmp_path):
    """A dry chip: no water in the map or the reference. Its water IoU is undefined: the log says "n/a", as
    the HTML does, not "nan"."""
    transform = from_origin(*ORIGIN, 10, 10)
    dry = _write(tmp_path / "dry.tif", np.zeros((8, 8), np.uint8), transform, nodata=255)
    label = _write(tmp_path / "label.tif", np.zeros((8, 8), np.uint8), transform)
    feedback = Feedback()
    parameters = {"PREDICTION": dry, "REFERENCE": label, "CLASS_NAMES": "not water, water"}
    assert _run({**parameters, "ONE_CLASS": "water", "CLASS_MAPPING": "1: water, 0: not water"}, feedback)
    assert "  IoU water: n/a" in feedback.lines and not any("nan" in line for line in feedback.lines)


def test_an_unknown_class_in_the_mapping_is_refused(qgis_app, prediction, tmp_path):
    parameters = {"PREDICTION": prediction, "REFERENCE": prediction, "CLASS_NAMES": "land, water"}
    feedback = Feedback()
    assert _run({**parameters, "CLASS_MAPPING": "1: forest", **_outputs(tmp_path)}, feedback) is None
    assert any("0 land, 1 water" in line for line in feedback.lines)


def test_disjoint_reference_fails_with_a_message(qgis_app, prediction, tmp_path):
    path = _write(tmp_path / "far.tif", np.ones((4, 4), np.uint8), from_origin(700000, 4000040, 10, 10))
    parameters = {
        "PREDICTION": prediction,
        "REFERENCE": path,
        "OUTPUT_HTML": str(tmp_path / "r.html"),
        "OUTPUT_CSV": str(tmp_path / "t.csv"),
    }
    assert _run(parameters) is None
