"""Training losses: segmentation with nodata ignored, feature (HFD) and logit distillation."""

from hfd_core.losses.distillation import FeatureDistillationLoss, LogitDistillationLoss
from hfd_core.losses.segmentation import segmentation_loss

__all__ = ["FeatureDistillationLoss", "LogitDistillationLoss", "segmentation_loss"]
