"""Training losses: segmentation with nodata ignored, feature (HFD), affinity and logit distillation, tile
consistency."""

from hfd_core.losses.consistency import TileConsistencyLoss
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
    "TileConsistencyLoss",
    "segmentation_loss",
]
