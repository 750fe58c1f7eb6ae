"""hfd:evaluate: class raster vs a reference raster (another grid) or polygons; HTML and CSV outputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

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


def _run(parameters):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    from hfd_qgis.evaluate_algorithm import EvaluateAlgorithm

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results, ok = EvaluateAlgorithm().create().run(parameters, context, QgsProcessingFeedback())
    return results if ok else None


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
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=cls:integer", "reference", "memory")
    feature = QgsFeature(layer.fields())
    x, y = ORIGIN
    feature.setGeometry(
        QgsGeometry.fromWkt(f"POLYGON(({x} {y},{x + 400} {y},{x + 400} {y - 100},{x} {y - 100},{x} {y}))")
    )
    feature["cls"] = 1  # the top 10 rows are water in the reference; the rest is unlabelled
    layer.dataProvider().addFeatures([feature])
    parameters = {
        "PREDICTION": prediction,
        "REFERENCE": layer,
        "REFERENCE_FIELD": "cls",
        "OUTPUT_HTML": str(tmp_path / "report.html"),
        "OUTPUT_CSV": str(tmp_path / "table.csv"),
    }
    results = _run(parameters)
    assert results["OA"] == pytest.approx(0.5)  # 400 labelled pixels, half predicted water


def test_disjoint_reference_fails_with_a_message(qgis_app, prediction, tmp_path):
    path = _write(tmp_path / "far.tif", np.ones((4, 4), np.uint8), from_origin(700000, 4000040, 10, 10))
    parameters = {
        "PREDICTION": prediction,
        "REFERENCE": path,
        "OUTPUT_HTML": str(tmp_path / "r.html"),
        "OUTPUT_CSV": str(tmp_path / "t.csv"),
    }
    assert _run(parameters) is None
