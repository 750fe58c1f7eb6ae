"""Losses of the two roles, as objectives for ``loop.fit``.

Teacher: cross-entropy of the EO network against the labels (nodata ignored).

Student (HFD-Net): ``CE(student(SAR), y) + distill_weight * L_feat + logit_distill_weight * L_logit`` where
* ``L_feat`` is the multi-scale heterogeneous feature distillation loss between the student's aligned pyramid
  features and those of the frozen EO teacher on the same window (levels in ``distill_scales``, all by
  default), computed where the SAR and the EO are valid; it needs no labels.
* ``L_logit`` is the DisOptNet-style baseline: KL divergence between temperature-softened class distributions.
* ``consistency_weight`` adds ``TileConsistencyLoss``: the student's classes on a random half-size crop of
  the window pulled toward its classes on the whole window, so tiled inference gives the same map whatever the
  tile size (our addition, see ``losses/consistency.py``).
* With ``pseudo_labels`` the teacher's arg-max on the EO replaces missing labels (IGNORE_INDEX) wherever the
  SAR is valid and the teacher's probability of that class is at least ``pseudo_label_confidence``, so the
  student can be fine-tuned on SAR + EO pairs without any labels, and not on the teacher's coin tosses.
The teacher is frozen: eval mode (BatchNorm statistics fixed), ``requires_grad`` off, forward under no_grad.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hfd_core import IGNORE_INDEX
from hfd_core.losses import (
    AffinityDistillationLoss,
    FeatureDistillationLoss,
    LogitDistillationLoss,
    TileConsistencyLoss,
    segmentation_loss,
)

DISTILL_LOSSES = {"feature": FeatureDistillationLoss, "affinity": AffinityDistillationLoss}


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: the teacher during student training."""
    model.eval()
    model.requires_grad_(False)
    return model


class TeacherObjective:
    """Segmentation loss of the EO network."""

    input_key = "eo"
    teacher = None

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        loss = segmentation_loss(model(batch["eo"]), batch["label"])
        return loss, {"seg": loss.detach()}


class StudentObjective:
    """Segmentation loss of the SAR network plus distillation from a frozen teacher (or none: SAR-only)."""

    input_key = "sar"

    def __init__(
        self,
        teacher: nn.Module | None,
        distill_weight: float = 0.0,
        distill_scales: tuple[int, ...] | None = None,
        logit_distill_weight: float = 0.0,
        temperature: float = 2.0,
        pseudo_labels: bool = False,
        distill_loss: str = "feature",
        consistency_weight: float = 0.0,
        pseudo_label_confidence: float = 0.0,
    ):
        uses_teacher = distill_weight > 0 or logit_distill_weight > 0 or pseudo_labels
        self.teacher = freeze(teacher) if teacher is not None and uses_teacher else None
        if uses_teacher and self.teacher is None:
            raise ValueError("distillation or pseudo-labels need a teacher model")
        self.distill_weight = distill_weight
        self.distill_scales = distill_scales
        self.logit_distill_weight = logit_distill_weight
        self.pseudo_labels = pseudo_labels
        self.pseudo_label_confidence = pseudo_label_confidence
        if distill_loss not in DISTILL_LOSSES:
            raise ValueError(f"distill_loss must be one of {sorted(DISTILL_LOSSES)}, not {distill_loss!r}")
        self.feature_loss = DISTILL_LOSSES[distill_loss]()
        self.logit_loss = LogitDistillationLoss(temperature)
        self.consistency_weight = consistency_weight
        self.consistency_loss = TileConsistencyLoss()

    def _levels(self, features: list[Tensor]) -> list[Tensor]:
        if self.distill_scales is None:
            return list(features)
        return [features[i] for i in self.distill_scales]

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        label, valid = batch["label"], batch["valid"]
        if self.teacher is None:
            logits = model(batch["sar"])
            total = seg = segmentation_loss(logits, label)
            parts = {"seg": seg.detach()}
        else:
            logits, total, parts = self._distilled(model, batch)
        if self.consistency_weight > 0:
            consistency = self.consistency_loss(model, batch["sar"], logits, valid)
            total = total + self.consistency_weight * consistency
            parts["tile_consistency"] = consistency.detach()
        return total, parts

    def _distilled(
        self, model: nn.Module, batch: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Student logits, segmentation + distillation loss and its parts."""
        label, valid = batch["label"], batch.get("distill_valid", batch["valid"])
        logits, features = model(batch["sar"], return_features=True)
        self.teacher.eval()
        with torch.no_grad():
            teacher_logits, teacher_features = self.teacher(batch["eo"], return_features=True)
        if self.pseudo_labels:
            confidence, teacher_label = teacher_logits.float().softmax(1).max(1)
            missing = (label == IGNORE_INDEX) & valid & (confidence >= self.pseudo_label_confidence)
            label = torch.where(missing, teacher_label, label)
        seg = segmentation_loss(logits, label)
        total, parts = seg, {"seg": seg.detach()}
        if self.distill_weight > 0:
            feat = self.feature_loss(self._levels(features), self._levels(teacher_features), valid)
            total = total + self.distill_weight * feat
            parts["feature_distill"] = feat.detach()
        if self.logit_distill_weight > 0:
            logit = self.logit_loss(logits, teacher_logits, valid)
            total = total + self.logit_distill_weight * logit
            parts["logit_distill"] = logit.detach()
        return logits, total, parts
