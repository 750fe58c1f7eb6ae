"""Segmentation scores from a confusion matrix: OA, per-class IoU, mIoU, F1, Cohen's kappa."""

from hfd_core.metrics.confusion import confusion_matrix, per_chip_miou, scores

__all__ = ["confusion_matrix", "per_chip_miou", "scores"]
