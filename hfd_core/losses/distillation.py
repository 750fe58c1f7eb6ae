"""Heterogeneous feature distillation (HFDM) and, for comparison, logit distillation.

``FeatureDistillationLoss`` pulls the SAR student's aligned pyramid features toward the frozen EO teacher's
at every level given (finest first). SAR and EO features of the same place differ in scale, so each feature
vector is standardised over its channels before comparing (per pixel: zero mean, unit variance, no learned
affine; our choice where the paper is silent, it makes the loss compare feature *patterns* and keeps levels
comparable). The loss of a level is the mean squared difference over channels, averaged over valid pixels
(the SAR valid mask pooled to the level's grid: a coarse pixel counts when at least half of it is valid).
Levels are combined with ``level_weights`` (equal by default, normalised to sum 1). Teacher features are
detached: gradients only reach the student.

``AffinityDistillationLoss`` is the relational alternative (pair-wise distillation in the style of structured
knowledge distillation for segmentation): per level, the cosine similarity of every pair of positions is
computed in the student's and in the teacher's features, and their squared difference is averaged over pairs
of valid positions. It transfers which places the EO network sees as alike, not the EO feature values
themselves, which a SAR network may be unable to reproduce. Levels larger than ``max_side`` are area-pooled
to at most ``max_side`` x ``max_side`` first (the pair matrix grows with the fourth power of the side).

``LogitDistillationLoss`` is the DisOptNet-style baseline: KL divergence between temperature-softened class
distributions of teacher and student, times T^2, averaged over valid pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _level_mask(valid: Tensor | None, like: Tensor) -> Tensor:
    """(N, H, W) float mask on the grid of ``like`` from a full-resolution boolean mask (or all ones)."""
    if valid is None:
        return like.new_ones((like.shape[0], *like.shape[-2:]), dtype=torch.float32)
    pooled = F.interpolate(valid[:, None].float(), size=like.shape[-2:], mode="area")[:, 0]
    return (pooled >= 0.5).float()


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    count = mask.sum()
    return (values * mask).sum() / count.clamp(min=1.0)


class _PyramidLoss(nn.Module):
    """Weighted sum over pyramid levels of ``level_loss(student, teacher, valid)`` (weights normalised)."""

    def __init__(self, level_weights: tuple[float, ...] | None = None):
        super().__init__()
        self.level_weights = level_weights

    def level_loss(self, student: Tensor, teacher: Tensor, valid: Tensor | None) -> Tensor:
        raise NotImplementedError

    def forward(self, student: list[Tensor], teacher: list[Tensor], valid: Tensor | None = None) -> Tensor:
        if len(student) != len(teacher) or not student:
            raise ValueError(f"need matching feature lists, got {len(student)} and {len(teacher)} levels")
        weights = self.level_weights or (1.0,) * len(student)
        if len(weights) != len(student):
            raise ValueError(f"{len(weights)} level weights for {len(student)} levels")
        total = sum(weights)
        loss = student[0].new_zeros((), dtype=torch.float32)
        for weight, s, t in zip(weights, student, teacher, strict=True):
            if s.shape[0] != t.shape[0] or s.shape[-2:] != t.shape[-2:]:
                raise ValueError(f"student feature {tuple(s.shape)} and teacher {tuple(t.shape)} differ")
            loss = loss + (weight / total) * self.level_loss(s, t.detach(), valid)
        return loss


class FeatureDistillationLoss(_PyramidLoss):
    """Multi-scale feature distillation between student and teacher pyramids (see the module docstring)."""

    def __init__(self, level_weights: tuple[float, ...] | None = None, standardize: bool = True):
        super().__init__(level_weights)
        self.standardize = standardize

    def _prepare(self, features: Tensor) -> Tensor:
        features = features.float()
        if not self.standardize:
            return features
        mean = features.mean(dim=1, keepdim=True)
        std = features.var(dim=1, keepdim=True, unbiased=False).add(1e-5).sqrt()
        return (features - mean) / std

    def level_loss(self, student: Tensor, teacher: Tensor, valid: Tensor | None) -> Tensor:
        if student.shape != teacher.shape:
            shapes = f"{tuple(student.shape)} and {tuple(teacher.shape)}"
            raise ValueError(f"student and teacher features differ: {shapes}")
        squared = (self._prepare(student) - self._prepare(teacher)).pow(2).mean(dim=1)
        return _masked_mean(squared, _level_mask(valid, student))


class AffinityDistillationLoss(_PyramidLoss):
    """Pair-wise (relational) distillation between student and teacher pyramids (see the module docstring)."""

    def __init__(self, level_weights: tuple[float, ...] | None = None, max_side: int = 32):
        super().__init__(level_weights)
        self.max_side = max_side

    def _pooled(self, features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        height, width = features.shape[-2:]
        if max(height, width) <= self.max_side:
            return features, mask
        size = (min(height, self.max_side), min(width, self.max_side))
        pooled_mask = F.adaptive_avg_pool2d(mask[:, None], size)[:, 0]
        return F.adaptive_avg_pool2d(features, size), (pooled_mask >= 0.5).float()

    @staticmethod
    def _affinity(features: Tensor) -> Tensor:
        flat = F.normalize(features.float().flatten(2), dim=1)  # (N, C, P), unit vectors per position
        return flat.transpose(1, 2) @ flat  # (N, P, P) cosine similarities

    def level_loss(self, student: Tensor, teacher: Tensor, valid: Tensor | None) -> Tensor:
        mask = _level_mask(valid, student)
        student, pair_mask = self._pooled(student, mask)
        teacher, _ = self._pooled(teacher, mask)
        pairs = pair_mask.flatten(1)[:, :, None] * pair_mask.flatten(1)[:, None, :]
        return _masked_mean((self._affinity(student) - self._affinity(teacher)).pow(2), pairs)


class LogitDistillationLoss(nn.Module):
    """Temperature-softened KL(teacher || student) per pixel, masked (DisOptNet-style baseline)."""

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, valid: Tensor | None = None) -> Tensor:
        t = self.temperature
        log_student = F.log_softmax(student_logits.float() / t, dim=1)
        log_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
        kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)
        return _masked_mean(kl, _level_mask(valid, student_logits)) * t * t
