"""Segmentation report (hfd_core.metrics.report): rasters on different grids, scores by hand, HTML and CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from hfd_core.errors import InputError
from hfd_core.metrics.report import (
    compare_rasters,
    parse_class_mapping,
    prediction_class_names,
    write_csv,
    write_html,
)

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


def test_sar_given_as_a_class_map_is_refused(tmp_path, prediction):
    """hfd:evaluate with the SAR raster as PREDICTION and REFERENCE (the dialog's default, the active layer)
    scored "OA 1.0000, mIoU 1.0000" on the values truncated to integers."""
    transform = from_origin(500000, 4000040, 10, 10)
    sar = _write(
        tmp_path / "sar.tif", np.full((4, 4), -12.7, np.float32) + np.eye(4, dtype=np.float32), transform
    )
    with pytest.raises(
        InputError, match=r"the segmentation sar.tif holds values that are not class ids \(such as"
    ):
        compare_rasters(sar, sar)
    with pytest.raises(InputError, match="the reference sar.tif holds values that are not class ids"):
        compare_rasters(prediction, sar)
    with pytest.raises(InputError, match="are the same file .* a map scored against itself measures nothing"):
        compare_rasters(prediction, prediction)  # a class map as its own reference, after the class-id check
    whole = _write(tmp_path / "float_ids.tif", np.array([[0, 0, 1, np.nan]] * 4, np.float32), transform)
    odd_nodata = np.array([[0, 0, 1, -9999.5]] * 4, np.float32)
    assert compare_rasters(_write(tmp_path / "odd.tif", odd_nodata, transform, nodata=-9999.5), prediction)
    assert (
        compare_rasters(prediction, whole).pixels > 0
    )  # class ids stored as floats, NaN as nodata, are fine


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


def _sen1floods11_like(tmp_path, prediction_classes):
    """Prediction with the model's ids (0 water, 1 vegetation, 2 built-up) and a reference with its own:
    1 water, 0 not water, -1 no data (as Sen1Floods11's LabelHand)."""
    transform = from_origin(500000, 4000040, 10, 10)
    predicted = _write(tmp_path / "pred3.tif", prediction_classes, transform, nodata=255)
    reference = np.zeros((4, 4), np.int16)
    reference[:, :2] = 1  # water in the left half
    reference[3] = -1
    return predicted, _write(tmp_path / "label.tif", reference, transform, nodata=-1)


def test_ids_compared_blindly_warn_with_the_pairs_found(tmp_path):
    prediction = np.array([[0, 0, 1, 2]] * 4, np.uint8)  # left half water, right half vegetation/built-up
    predicted, label = _sen1floods11_like(tmp_path, prediction)
    report = compare_rasters(predicted, label, ["water", "vegetation", "built-up"])
    assert report.oa == 0.0  # water (0) is the reference's "not water"
    assert len(report.warnings) == 1 and "1: water" in report.warnings[0]


def test_a_water_label_against_a_land_cover_map_suggests_one_class_against_the_rest(tmp_path):
    """A Sen1Floods11 label (1 water, 0 not water) against a land-cover map that calls most of both bare:
    the warning suggested the pairs "0: bare, 1: bare", which no mapping can use."""
    names = ["water", "vegetation", "built-up", "low vegetation", "bare"]
    prediction = np.full((4, 4), 4, np.uint8)
    prediction[0, :2] = 0  # a little of the reference's water is called water
    prediction[1, 2] = 3
    predicted, label = _sen1floods11_like(tmp_path, prediction)
    (warning,) = compare_rasters(predicted, label, names).warnings
    assert "pairs 0: bare, 1: bare" in warning
    assert "Compare one class against the rest, e.g. water with the class mapping '1: water'" in warning


def test_many_small_reference_values_keep_the_general_advice(tmp_path):
    """Polygon ids taken for classes (hundreds of values, none on 1 % of the pixels) made the suggestion of
    one class against the rest fail with "max() arg is an empty sequence"."""
    transform = from_origin(500000, 4000400, 10, 10)
    prediction = np.zeros((40, 40), np.uint8)
    prediction[:, 20:] = 1
    ids = np.arange(1600, dtype=np.int32).reshape(40, 40) + 2  # every pixel its own polygon id
    predicted = _write(tmp_path / "pred.tif", prediction, transform, nodata=255)
    reference = _write(tmp_path / "ids.tif", ids, transform, nodata=-1)
    with pytest.raises(InputError, match="do not look like the prediction's class ids.*give a class mapping"):
        compare_rasters(predicted, reference, ["water", "land"])  # no class id in common: a user error


def test_binary_water_against_the_rest_with_a_mapping(tmp_path):
    prediction = np.array([[0, 0, 1, 2]] * 4, np.uint8)
    prediction[0, 1] = 1  # one water pixel of the reference predicted as vegetation
    predicted, label = _sen1floods11_like(tmp_path, prediction)
    names = ["water", "vegetation", "built-up"]
    report = compare_rasters(
        predicted, label, names, mapping=parse_class_mapping("1: water", names), positive=0
    )
    assert report.class_names == ["water", "not water"]
    assert report.matrix.tolist() == [[5, 1], [0, 6]]
    assert report.iou[0] == pytest.approx(5 / 6) and not report.warnings
    assert (
        report.comparison
        == "water against the rest (reference 1 as water; every other valid value as the rest)"
    )
    write_csv(report, tmp_path / "water.csv")  # by the map's ids: water was row 0 of the comparison
    rows = list(csv.DictReader(open(tmp_path / "water.csv")))
    assert [(r["class_id"], r["class_name"]) for r in rows] == [("0", "water"), ("", "not water")]
    names = ["not water", "water"]  # the water model's ids: the compared class is not row 0
    report = compare_rasters(
        predicted, label, names, mapping=parse_class_mapping("1: water", names), positive=1
    )
    write_csv(report, tmp_path / "water.csv")
    rows = list(csv.DictReader(open(tmp_path / "water.csv")))
    assert [(r["class_id"], r["class_name"]) for r in rows] == [("1", "water"), ("", "not water")]
    assert "predicted_1" in rows[0] and "predicted_rest" in rows[0]


def _water_label(tmp_path, reference: np.ndarray, prediction: np.ndarray, nodata=None):
    transform = from_origin(500000, 4000040, 10, 10)
    predicted = _write(tmp_path / "pred.tif", prediction, transform, nodata=255)
    return predicted, _write(tmp_path / "label.tif", reference, transform, nodata=nodata)


def test_one_class_with_an_undeclared_ignore_value(tmp_path):
    """A label of 1 water, 0 not water and 255 ignored, 255 not declared as nodata (STAC Overflow's way):
    compared one class against the rest, 255 was scored as not water without a word. Listing the rest's
    values leaves it out, as a mapping does without a class compared; listing water alone names it."""
    names = ["not water", "water"]
    reference = np.array([[1, 1, 0, 0]] * 4, np.uint8)
    reference[::2] = 255  # every other row unlabelled
    prediction = np.array([[1, 1, 1, 0]] * 4, np.uint8)
    predicted, label = _water_label(tmp_path, reference, prediction)
    listed = compare_rasters(predicted, label, names, parse_class_mapping("1: water, 0: not water", names), 1)
    assert listed.pixels == 8 and listed.iou[0] == pytest.approx(4 / 6) and not listed.warnings
    water_only = compare_rasters(predicted, label, names, parse_class_mapping("1: water", names), 1)
    assert water_only.pixels == 16
    (warning,) = water_only.warnings
    assert "not water is every other reference value: 0 (33%), 255 (67%)" in warning
    reference[reference == 0] = 255  # water and the undeclared 255 alone: still named
    predicted, label = _water_label(tmp_path, reference, prediction)
    (warning,) = compare_rasters(predicted, label, names, parse_class_mapping("1: water", names), 1).warnings
    assert "not water is every other reference value: 255 (100%)" in warning


def test_a_reference_of_water_alone_says_its_iou_is_recall(tmp_path):
    """Flood outlines drawn as water polygons only: the ground outside them is unlabelled, so false water
    there is not measured; the report says so."""
    names = ["not water", "water"]
    reference = np.full((4, 4), -1, np.int16)
    reference[:, :2] = 1
    predicted, label = _water_label(tmp_path, reference, np.ones((4, 4), np.uint8), nodata=-1)
    report = compare_rasters(predicted, label, names, parse_class_mapping("1: water", names), 1)
    assert report.iou[0] == 1.0
    assert len(report.warnings) == 1 and "the reference labels water only" in report.warnings[0]


def test_a_negative_reference_value_in_the_mapping_is_refused(tmp_path):
    """-1 is nodata in Sen1Floods11's labels, and ground outside the reference reads the same: mapping it
    counted pixels beyond the reference's extent as that class."""
    names = ["water", "vegetation", "built-up"]
    predicted, label = _sen1floods11_like(tmp_path, np.array([[0, 0, 1, 2]] * 4, np.uint8))
    with pytest.raises(InputError, match="reference value -1: negative reference values are read as nodata"):
        compare_rasters(
            predicted, label, names, parse_class_mapping("1: water, 0: vegetation, -1: vegetation", names)
        )


def test_mapping_translates_reference_values_and_drops_unlisted_ones(tmp_path):
    prediction = np.array([[0, 0, 1, 2]] * 4, np.uint8)
    predicted, label = _sen1floods11_like(tmp_path, prediction)
    names = ["water", "vegetation", "built-up"]
    only_water = compare_rasters(predicted, label, names, mapping={1: 0})
    assert only_water.pixels == 6 and only_water.oa == 1.0  # reference 0 is not listed: not counted
    both = compare_rasters(predicted, label, names, mapping=parse_class_mapping("1:0, 0:Vegetation", names))
    assert both.pixels == 12 and both.oa == pytest.approx(9 / 12)


def test_class_mapping_errors_name_the_classes():
    names = ["water", "vegetation"]
    with pytest.raises(InputError, match="0 water, 1 vegetation"):
        parse_class_mapping("1: forest", names)
    with pytest.raises(InputError, match="reference value: model class"):
        parse_class_mapping("1 water", names)
    with pytest.raises(InputError, match="not an integer"):
        parse_class_mapping("x: water", names)


def test_class_names_from_the_tag_or_the_style(tmp_path):
    from hfd_core.infer.style import write_qml
    from hfd_core.modelfile import ClassInfo

    path = _write(tmp_path / "seg.tif", np.array([[0, 1]], np.uint8), from_origin(500000, 4000040, 10, 10))
    assert prediction_class_names(path) is None
    write_qml(path.with_suffix(".qml"), [ClassInfo(0, "water", "#0000ff"), ClassInfo(2, "bare", "#ffff00")])
    assert prediction_class_names(path) == ["water", "class 1", "bare"]
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(CLASS_NAMES='["open water", "land"]')
    assert prediction_class_names(path) == ["open water", "land"]
    grid = from_origin(500000, 4000040, 10, 10)
    reference = _write(tmp_path / "ref.tif", np.array([[0, 1]], np.uint8), grid)
    assert compare_rasters(path, reference).class_names == ["open water", "land"]


def test_sen1floods11_label_against_the_bundled_model_in_binary_mode(tmp_path, shared_data):
    """Real chip: LabelHand (1 water, 0 not, -1 nodata) against the bundled student's map."""
    from hfd_core.infer.tiled import segment_raster

    folder = shared_data / "sen1floods11"
    predicted = tmp_path / "india.tif"
    model = Path(__file__).resolve().parents[1] / "resources" / "models" / "student.pt"
    segment_raster(folder / "India_900498_S1Hand.tif", predicted, model, device="cpu")
    label = folder / "India_900498_LabelHand.tif"
    blind = compare_rasters(predicted, label)
    assert blind.class_names[0] == "water" and blind.oa < 0.1 and blind.warnings
    names = blind.class_names
    binary = compare_rasters(predicted, label, mapping=parse_class_mapping("1: water", names), positive=0)
    with rasterio.open(predicted) as src, rasterio.open(label) as ref:
        water, truth = src.read(1) == 0, ref.read(1)
    scored = truth != -1  # the model leaves no nodata on this chip
    water, truth = water[scored], truth[scored] == 1
    assert binary.iou[0] == pytest.approx((water & truth).sum() / (water | truth).sum())
    assert binary.oa == pytest.approx((water == truth).mean())
    # measured 2026-12-05: water IoU 0.093, OA 0.567. The bundled land-cover student never saw this chip and
    # calls most of its flooded fields another class (README "Fine-tuning defaults").
