"""Cross-entropy that ignores nodata labels."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from hfd_core import IGNORE_INDEX


def segmentation_loss(logits: Tensor, label: Tensor) -> Tensor:
    """Mean cross-entropy over labelled pixels (``IGNORE_INDEX`` skipped); 0 with a gradient when none are."""
    if not (label != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), label.long(), ignore_index=IGNORE_INDEX)
