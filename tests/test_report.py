"""Segmentation report (hfd_core.metrics.report): rasters on different grids, scores by hand, HTML and CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from hfd_core.errors import InputError
from hfd_core.metrics.report import compare_rasters, write_csv, write_html

UTM = "EPSG:32633"


def _write(path, array, transform, crs=UTM, nodata=None):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype=array.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(array[np.newaxis])
    return path


@pytest.fixture
def prediction(tmp_path):
    """4 x 4 at 10 m: left half class 0, right half class 1, one nodata pixel."""
    classes = np.array([[0, 0, 1, 1]] * 4, np.uint8)
    classes[0, 0] = 255
    return _write(tmp_path / "pred.tif", classes, from_origin(500000, 4000040, 10, 10), nodata=255)


def test_scores_by_hand_with_a_reference_on_a_finer_shifted_grid(tmp_path, prediction):
    # reference at 5 m, starting 10 m further west: 10 x 8 cells, class 1 in the right three quarters
    reference = np.zeros((8, 10), np.int16)
    reference[:, 4:] = 1
    reference[6:, :] = -1  # "no data" as in Sen1Floods11: the last row of the prediction grid
    path = _write(tmp_path / "ref.tif", reference, from_origin(499990, 4000040, 5, 5), nodata=-1)
    report = compare_rasters(prediction, path, ["land", "water"])
    # on the prediction grid the reference is [[0, 1, 1, 1]] * 3 + a nodata row; prediction (0, 0) is nodata
    expected = np.array([[2, 0], [3, 6]])  # rows reference, columns prediction
    assert report.matrix.tolist() == expected.tolist()
    assert report.oa == pytest.approx(8 / 11)
    assert report.iou == pytest.approx([2 / 5, 6 / 9])
    assert report.miou == pytest.approx((2 / 5 + 6 / 9) / 2)
    assert report.pixels == 11


def test_report_in_another_crs(tmp_path, prediction):
    from rasterio.warp import transform_bounds

    west, south, east, north = transform_bounds(UTM, "EPSG:4326", 500000, 4000000, 500040, 4000040)
    reference = np.zeros((40, 40), np.uint8)
    reference[:, 20:] = 1
    transform = from_origin(west, north, (east - west) / 40, (north - south) / 40)
    path = _write(tmp_path / "ref4326.tif", reference, transform, crs="EPSG:4326")
    report = compare_rasters(prediction, path)
    assert report.class_names == ["class 0", "class 1"]
    assert report.oa > 0.9 and report.pixels == 15


def test_disjoint_rasters_are_refused(tmp_path, prediction):
    path = _write(tmp_path / "far.tif", np.ones((4, 4), np.uint8), from_origin(600000, 4000040, 10, 10))
    with pytest.raises(InputError, match="does not overlap"):
        compare_rasters(prediction, path)


def test_html_and_csv(tmp_path, prediction):
    path = _write(
        tmp_path / "same.tif", np.array([[0, 0, 1, 1]] * 4, np.uint8), from_origin(500000, 4000040, 10, 10)
    )
    report = compare_rasters(prediction, path, ["land", "<water>"])
    assert report.oa == 1.0 and report.kappa == pytest.approx(1.0)
    write_html(report, tmp_path / "r.html")
    write_csv(report, tmp_path / "r.csv")
    page = (tmp_path / "r.html").read_text()
    assert "&lt;water&gt;" in page and "Confusion matrix" in page and "1.0000" in page
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["class_name"] for r in rows] == ["land", "<water>"]
    assert rows[0]["predicted_0"] == "7" and rows[1]["predicted_1"] == "8" and rows[0]["predicted_1"] == "0"
    assert float(rows[1]["iou"]) == 1.0
