"""Confusion matrix and the scores derived from it.

Rows are reference classes, columns predicted classes. Pixels whose reference or prediction is outside
``0..K-1`` (nodata, ``IGNORE_INDEX``) are not counted. A class absent from both reference and prediction has
no IoU (NaN) and is left out of the mean, so a chip without flood that is predicted without flood scores on
the classes it has.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def confusion_matrix(
    prediction: Tensor | np.ndarray, reference: Tensor | np.ndarray, num_classes: int
) -> Tensor:
    """(K, K) int64 counts; pixels with a reference or prediction outside 0..K-1 are ignored."""
    prediction = torch.as_tensor(prediction).reshape(-1).long()
    reference = torch.as_tensor(reference).reshape(-1).long().to(prediction.device)
    keep = (reference >= 0) & (reference < num_classes) & (prediction >= 0) & (prediction < num_classes)
    index = reference[keep] * num_classes + prediction[keep]
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(matrix: Tensor | np.ndarray) -> dict:
    """OA, kappa, mIoU (floats) and per-class IoU, F1, precision, recall (lists, NaN where undefined)."""
    m = np.asarray(torch.as_tensor(matrix).cpu(), dtype=np.float64)
    total = m.sum()
    true_positive = np.diag(m)
    reference, predicted = m.sum(axis=1), m.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        union = reference + predicted - true_positive
        iou = np.where(union > 0, true_positive / union, np.nan)
        f1 = np.where(reference + predicted > 0, 2 * true_positive / (reference + predicted), np.nan)
        precision = np.where(predicted > 0, true_positive / predicted, np.nan)
        recall = np.where(reference > 0, true_positive / reference, np.nan)
    oa = float(true_positive.sum() / total) if total else float("nan")
    expected = float((reference * predicted).sum() / total**2) if total else float("nan")
    kappa = (oa - expected) / (1 - expected) if total and expected < 1 else (1.0 if total else float("nan"))
    present = ~np.isnan(iou)
    return {
        "oa": oa,
        "kappa": float(kappa),
        "miou": float(iou[present].mean()) if present.any() else float("nan"),
        "iou": iou.tolist(),
        "f1": f1.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "pixels": int(total),
    }


def per_chip_miou(matrices: list[Tensor | np.ndarray]) -> float:
    """Mean over chips of each chip's mIoU (chips without counted pixels skipped): the OmbriaNet protocol."""
    values = [scores(m)["miou"] for m in matrices]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")
