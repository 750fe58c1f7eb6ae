"""Scores against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hfd_core import IGNORE_INDEX
from hfd_core.metrics import confusion_matrix, per_chip_miou, scores


def test_confusion_matrix_ignores_nodata_in_reference_and_prediction():
    reference = np.array([0, 0, 1, 1, 2, IGNORE_INDEX, 2])
    prediction = np.array([0, 1, 1, 1, 0, 2, IGNORE_INDEX])
    matrix = confusion_matrix(prediction, reference, 3).numpy()
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_scores_match_hand_computation():
    # reference rows, prediction columns: 50 px; tp = 20 + 15 = 35
    matrix = np.array([[20, 5], [10, 15]])
    s = scores(matrix)
    assert s["oa"] == pytest.approx(35 / 50)
    assert s["iou"] == pytest.approx([20 / 35, 15 / 30])
    assert s["miou"] == pytest.approx((20 / 35 + 15 / 30) / 2)
    assert s["f1"] == pytest.approx([40 / 55, 30 / 45])
    expected = (25 * 30 + 25 * 20) / 50**2  # chance agreement
    assert s["kappa"] == pytest.approx((0.7 - expected) / (1 - expected))


def test_absent_class_is_left_out_of_the_mean():
    s = scores(np.array([[10, 0, 0], [0, 5, 0], [0, 0, 0]]))
    assert math.isnan(s["iou"][2]) and s["miou"] == 1.0 and s["kappa"] == 1.0


def test_per_chip_miou_averages_chips():
    perfect = np.array([[4, 0], [0, 4]])
    half = np.array([[2, 2], [0, 0]])  # class 0 IoU 0.5, class 1 IoU 0 (predicted, absent)
    assert per_chip_miou([perfect, half]) == pytest.approx((1.0 + 0.25) / 2)
    assert math.isnan(per_chip_miou([np.zeros((2, 2))]))
