"""Tile-consistency loss: a crop must be classified as in the whole window."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hfd_core.losses import TileConsistencyLoss
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.train.objectives import StudentObjective


class WindowMean(nn.Module):
    """Context-dependent toy network: each pixel's logits are its value minus the window's mean."""

    def forward(self, x):
        centred = x[:, :1] - x[:, :1].mean(dim=(2, 3), keepdim=True)
        return torch.cat([centred, -centred], dim=1)


def test_crops_are_multiples_inside_the_window():
    loss = TileConsistencyLoss(crop_fraction=0.5, multiple=16)
    torch.manual_seed(0)
    for _ in range(20):
        rows, cols = loss.crop(96, 80)
        assert rows.stop - rows.start == 48 and cols.stop - cols.start == 32
        assert 0 <= rows.start and rows.stop <= 96 and 0 <= cols.start and cols.stop <= 80
    rows, cols = TileConsistencyLoss(multiple=16).crop(16, 16)  # tiny window: the crop is the window
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 16, 0, 16)
    with pytest.raises(ValueError, match="crop_fraction"):
        TileConsistencyLoss(crop_fraction=1.0)


def test_zero_for_a_pointwise_network_positive_for_a_context_dependent_one():
    x = torch.randn(2, 2, 64, 64)
    x[..., :32, :] += 3  # the window mean differs from the crops' means
    pointwise = nn.Conv2d(2, 2, 1)
    loss = TileConsistencyLoss()
    assert loss(pointwise, x, pointwise(x)).item() < 1e-6
    context = WindowMean()
    assert loss(context, x, context(x)).item() > 0.01


def test_only_the_crop_branch_gets_gradients_and_invalid_pixels_do_not_count():
    network = HFDNet(HFDNetConfig(2, 3, widths=(4, 8, 8, 8), align_dim=8))
    x = torch.randn(2, 2, 64, 64)
    full = network(x)
    loss = TileConsistencyLoss()(network, x, full)
    loss.backward()
    assert network.classifier.weight.grad.abs().sum() > 0
    nothing_valid = torch.zeros(2, 64, 64, dtype=torch.bool)
    assert TileConsistencyLoss()(network, x, full.detach(), nothing_valid).item() == 0


def test_student_objective_adds_consistency_for_the_sar_only_student():
    network = HFDNet(HFDNetConfig(2, 3, widths=(4, 8, 8, 8), align_dim=8))
    batch = {
        "sar": torch.randn(2, 2, 64, 64),
        "label": torch.randint(0, 3, (2, 64, 64)),
        "valid": torch.ones(2, 64, 64, dtype=torch.bool),
    }
    network.eval()  # same BatchNorm behaviour for both calls
    plain, parts = StudentObjective(None).loss(network, batch)
    assert set(parts) == {"seg"}
    total, parts = StudentObjective(None, consistency_weight=2.0).loss(network, batch)
    assert set(parts) == {"seg", "tile_consistency"} and parts["tile_consistency"] > 0
    assert total.item() == pytest.approx(plain.item() + 2.0 * parts["tile_consistency"].item(), rel=1e-5)
