"""HFD-Net: shapes, roles, feature pyramid, alignment, CPU budget."""

from __future__ import annotations

import pytest
import torch

from hfd_core.models import HFDNet, HFDNetConfig, count_flops, count_parameters
from hfd_core.models.alignment import FlowAlign


def test_logits_at_input_size_and_pyramid_finest_first():
    model = HFDNet(HFDNetConfig(in_channels=2, num_classes=5))
    logits, features = model(torch.randn(2, 2, 64, 96), return_features=True)
    assert logits.shape == (2, 5, 64, 96)
    assert [tuple(f.shape) for f in features] == [
        (2, 64, 32, 48),
        (2, 64, 16, 24),
        (2, 64, 8, 12),
        (2, 64, 4, 6),
    ]


def test_teacher_and_student_differ_only_in_input_channels():
    teacher = HFDNet(HFDNetConfig(in_channels=6, num_classes=5))
    student = HFDNet(HFDNetConfig(in_channels=2, num_classes=5))
    teacher_shapes = {k: v.shape for k, v in teacher.state_dict().items()}
    student_shapes = {k: v.shape for k, v in student.state_dict().items()}
    assert teacher_shapes.keys() == student_shapes.keys()
    differing = [k for k in teacher_shapes if teacher_shapes[k] != student_shapes[k]]
    assert differing == ["encoder.stages.0.0.0.weight"]
    _, t = teacher(torch.randn(1, 6, 32, 32), return_features=True)
    _, s = student(torch.randn(1, 2, 32, 32), return_features=True)
    assert [x.shape for x in t] == [x.shape for x in s]


def test_rejects_sizes_that_are_not_multiples_of_16():
    with pytest.raises(ValueError, match="multiples of 16"):
        HFDNet(HFDNetConfig(2, 3))(torch.randn(1, 2, 40, 32))


def test_default_network_fits_the_cpu_budget():
    """Issue 3 budget: under 5 M parameters and 3 GFLOPs per 256x256 tile (2 x multiply-adds)."""
    model = HFDNet(HFDNetConfig(in_channels=2, num_classes=5))
    parameters, flops = count_parameters(model), count_flops(model, in_channels=2, size=256)
    assert 0.5e6 < parameters < 5e6
    assert 1e9 < flops < 3e9


def test_flow_alignment_starts_as_bilinear_upsampling_and_learns_offsets():
    align = FlowAlign(dim=4)
    fine, coarse = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 8, 8, requires_grad=True)
    plain = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(align(fine, coarse), plain, atol=1e-5)
    align(fine, coarse).square().sum().backward()
    assert align.offset.weight.grad.abs().sum() > 0


def test_shifted_offsets_move_the_coarse_map():
    align = FlowAlign(dim=1)
    with torch.no_grad():
        align.offset.bias.copy_(torch.tensor([2.0, 0.0]))  # sample 2 fine pixels to the right
    coarse = torch.arange(64.0).reshape(1, 1, 8, 8)
    warped = align(torch.zeros(1, 1, 16, 16), coarse)
    plain = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(warped[..., 4:10], plain[..., 6:12], atol=1e-4)


@pytest.mark.parametrize("fine_size, coarse_size", [(16, 8), (32, 4)])
def test_bounded_offsets_shift_at_most_max_offset_coarse_pixels(fine_size, coarse_size):
    align = FlowAlign(dim=1, max_offset=1.0)
    with torch.no_grad():
        align.offset.bias.copy_(torch.tensor([1000.0, 0.0]))  # asks for a shift far past the bound
    ramp = torch.arange(float(coarse_size)).expand(1, 1, coarse_size, coarse_size)  # value = coarse column
    warped = align(torch.zeros(1, 1, fine_size, fine_size), ramp)
    plain = torch.nn.functional.interpolate(ramp, size=(fine_size, fine_size), mode="bilinear")
    inside = slice(fine_size // 4, fine_size // 2)  # away from the clamped border
    assert torch.allclose((warped - plain)[..., inside], torch.ones(1), atol=1e-3)  # exactly one coarse pixel


def test_unbounded_offsets_follow_the_offset_layer():
    align = FlowAlign(dim=1, max_offset=None)
    with torch.no_grad():
        align.offset.bias.copy_(torch.tensor([6.0, 0.0]))  # 6 fine pixels = 3 coarse pixels
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)
    warped = align(torch.zeros(1, 1, 16, 16), ramp)
    plain = torch.nn.functional.interpolate(ramp, size=(16, 16), mode="bilinear")
    assert torch.allclose((warped - plain)[..., 2:8], torch.full((1,), 3.0), atol=1e-3)


def test_alignment_off_has_no_offset_layers():
    on = HFDNet(HFDNetConfig(2, 3, align=True))
    off = HFDNet(HFDNetConfig(2, 3, align=False))
    assert count_parameters(off) < count_parameters(on)
    assert not any("offset" in name for name, _ in off.named_parameters())
    assert off(torch.randn(1, 2, 32, 32)).shape == (1, 3, 32, 32)


def test_config_round_trip():
    config = HFDNetConfig(3, 4, widths=(8, 8, 16, 16), align_dim=8, align=False)
    assert HFDNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        HFDNetConfig.from_dict({**config.to_dict(), "depth": 3})
    with pytest.raises(ValueError, match="max_offset"):
        HFDNetConfig(2, 3, max_offset=0)


def test_new_networks_bound_offsets_and_old_model_files_keep_theirs_unbounded():
    assert HFDNetConfig(2, 3).max_offset == 1.0
    saved_before_the_bound = {"in_channels": 2, "num_classes": 3, "widths": [8, 8, 16, 16], "align_dim": 8}
    assert HFDNetConfig.from_dict(saved_before_the_bound).max_offset is None
