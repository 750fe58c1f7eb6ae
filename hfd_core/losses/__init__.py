"""Training losses: segmentation with nodata ignored, feature (HFD), affinity and logit distillation."""

from hfd_core.losses.distillation import (
    AffinityDistillationLoss,
    FeatureDistillationLoss,
    LogitDistillationLoss,
)
from hfd_core.losses.segmentation import segmentation_loss

__all__ = [
    "AffinityDistillationLoss",
    "FeatureDistillationLoss",
    "LogitDistillationLoss",
    "segmentation_loss",
]
