"""Distillation and segmentation losses."""

from __future__ import annotations

import pytest
import torch

from hfd_core import IGNORE_INDEX
from hfd_core.losses import (
    AffinityDistillationLoss,
    FeatureDistillationLoss,
    LogitDistillationLoss,
    segmentation_loss,
)
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.train.objectives import StudentObjective


def _pyramid(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 8, s, s, generator=generator) for s in (16, 8, 4)]


def test_feature_loss_is_zero_when_features_match_and_positive_otherwise():
    loss = FeatureDistillationLoss()
    features = _pyramid(0)
    assert loss(features, [f.clone() for f in features]).item() < 1e-10
    assert loss(features, _pyramid(1)).item() > 0.5


def test_feature_loss_ignores_scale_differences_between_modalities():
    features = _pyramid(0)
    assert FeatureDistillationLoss()(features, [3 * f + 1 for f in features]).item() < 1e-6
    assert FeatureDistillationLoss(standardize=False)(features, [3 * f + 1 for f in features]).item() > 1


def test_feature_loss_counts_only_valid_pixels():
    student, teacher = _pyramid(0), _pyramid(0)
    for t in teacher:
        t[..., :, t.shape[-1] // 2 :] += 5 * torch.randn_like(t[..., :, t.shape[-1] // 2 :])
    valid = torch.zeros(2, 32, 32, dtype=torch.bool)
    valid[..., :16] = True  # left half valid: only there do the pyramids match
    loss = FeatureDistillationLoss()
    assert loss(student, teacher, valid).item() < 1e-8
    assert loss(student, teacher).item() > 0.1


def test_level_weights_select_scales():
    student, teacher = _pyramid(0), _pyramid(0)
    teacher[2] = torch.randn_like(teacher[2])
    assert FeatureDistillationLoss(level_weights=(1, 1, 0))(student, teacher).item() < 1e-8
    assert FeatureDistillationLoss(level_weights=(0, 0, 1))(student, teacher).item() > 0.5


def test_gradient_reaches_the_student_only_and_teacher_stays_frozen():
    config = HFDNetConfig(2, 3, widths=(4, 8, 8, 8), align_dim=8)
    teacher = HFDNet(HFDNetConfig(3, 3, widths=(4, 8, 8, 8), align_dim=8))
    student = HFDNet(config)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    objective = StudentObjective(teacher, distill_weight=1.0)
    batch = {
        "sar": torch.randn(2, 2, 32, 32),
        "eo": torch.randn(2, 3, 32, 32),
        "label": torch.randint(0, 3, (2, 32, 32)),
        "valid": torch.ones(2, 32, 32, dtype=torch.bool),
    }
    student.train()
    loss, parts = objective.loss(student, batch)
    loss.backward()
    assert parts["feature_distill"] > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert student.encoder.stages[0][0][0].weight.grad.abs().sum() > 0
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats unchanged too


def test_affinity_loss_compares_relations_not_feature_values():
    """Zero when the pair-wise similarities agree, even if the features themselves differ (a rotation of the
    channel space); positive when the spatial structure differs."""
    loss = AffinityDistillationLoss()
    features = _pyramid(0)
    rotation = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(3)))[0]
    rotated = [torch.einsum("dc,nchw->ndhw", rotation, f) for f in features]
    assert FeatureDistillationLoss()(features, rotated).item() > 0.5
    assert loss(features, rotated).item() < 1e-10
    assert loss(features, _pyramid(1)).item() > 0.05


def test_affinity_loss_counts_only_valid_pairs_and_pools_large_levels():
    student, teacher = _pyramid(0), _pyramid(0)
    for t in teacher:
        t[..., :, t.shape[-1] // 2 :] = torch.randn_like(t[..., :, t.shape[-1] // 2 :])
    valid = torch.zeros(2, 32, 32, dtype=torch.bool)
    valid[..., :16] = True
    assert AffinityDistillationLoss()(student, teacher, valid).item() < 1e-10
    assert AffinityDistillationLoss()(student, teacher).item() > 0.05
    pooled = AffinityDistillationLoss(max_side=4)  # every level pooled to 4 x 4 before the pairs are formed
    assert pooled(student, teacher, valid).item() < 1e-10


def test_student_objective_uses_the_chosen_distillation_loss():
    teacher = HFDNet(HFDNetConfig(3, 3, widths=(4, 8, 8, 8), align_dim=8))
    objective = StudentObjective(teacher, distill_weight=1.0, distill_loss="affinity")
    assert isinstance(objective.feature_loss, AffinityDistillationLoss)
    with pytest.raises(ValueError, match="distill_loss"):
        StudentObjective(teacher, distill_weight=1.0, distill_loss="cosine")


def test_logit_distillation_zero_for_equal_logits():
    logits = torch.randn(2, 4, 8, 8)
    loss = LogitDistillationLoss(temperature=2.0)
    assert loss(logits, logits.clone()).item() < 1e-6
    assert loss(logits, torch.randn(2, 4, 8, 8)).item() > 0.01


def test_segmentation_loss_ignores_nodata():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1] = 10.0  # predicts class 1 everywhere
    right = torch.tensor([[[1, 1], [1, 1]]])
    half_nodata = torch.tensor([[[1, IGNORE_INDEX], [IGNORE_INDEX, 1]]])
    assert torch.isclose(segmentation_loss(logits, right), segmentation_loss(logits, half_nodata))
    all_nodata = torch.full((1, 2, 2), IGNORE_INDEX)
    empty = segmentation_loss(logits.requires_grad_(), all_nodata)
    assert empty.item() == 0.0 and empty.requires_grad
