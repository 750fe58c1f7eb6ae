"""Heterogeneous feature alignment module (HFAM).

Where the paper is silent we follow the alignment-based feature pyramids (SFNet's flow alignment, AlignSeg):
an upsampled coarse map is not simply added to a finer one, it is first *warped* by a learned offset field.

* ``FlowAlign``: from the concatenation [fine, bilinear-upsampled coarse] a 3x3 convolution predicts a
  2-channel offset field (in pixels of the fine grid); the coarse map is resampled at the shifted
  positions with ``grid_sample`` (bilinear). The offset convolution starts at zero, so a fresh
  module is a plain bilinear upsampling and learning only moves it away from that when it helps.
  ``learned=False`` (the ablation) keeps bilinear upsampling.
  ``max_offset`` bounds the shift (``max_offset * tanh(raw / max_offset)``), in pixels of the *coarse* grid:
  upsampling misplaces a coarse feature by less than one of its pixels, which is what alignment corrects.
  Unbounded offsets (``None``, models saved before the bound existed) were seen to grow to 7 coarse pixels
  (58 input pixels) on a small training set, turning alignment into long-range context that tile edges
  cut off: the bundled student's classes then depended on the tiling.
* ``FeatureAlignmentModule``: lateral 1x1 convolutions bring every encoder level to ``dim`` channels; a
  top-down path adds the aligned coarser level to each finer one (then a depthwise-separable 3x3 smooths it);
  the resulting pyramid (finest first) is what distillation compares. For the classifier every level is
  aligned again onto the finest grid, the levels are concatenated and fused by a 1x1 convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hfd_core.models.blocks import ConvBNReLU, SeparableConvBNReLU, conv_of_concat, is_channels_last


def _base_grid(height: int, width: int, like: Tensor) -> Tensor:
    """Normalised (x, y) sampling positions of pixel centres, shape (1, H, W, 2), align_corners=False."""
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) * (2.0 / height) - 1.0
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) + 0.5) * (2.0 / width) - 1.0
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)


class FlowAlign(nn.Module):
    """Upsample ``coarse`` onto the grid of ``fine``, warped by an offset field learned from both."""

    def __init__(self, dim: int, learned: bool = True, max_offset: float | None = None):
        super().__init__()
        self.max_offset = max_offset
        self.offset = nn.Conv2d(2 * dim, 2, 3, padding=1) if learned else None
        if self.offset is not None:
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)

    def forward(self, fine: Tensor, coarse: Tensor) -> Tensor:
        warped = self.resample(fine, coarse, coarse)
        # grid_sample answers in the default layout: back to the input's (channels-last on CPU inference)
        return warped.contiguous(memory_format=torch.channels_last) if is_channels_last(fine) else warped

    def resample(self, fine: Tensor, coarse: Tensor, values: Tensor) -> Tensor:
        """``values`` (on the grid of ``coarse``) resampled onto the grid of ``fine`` at the positions the
        offsets learned from ``fine`` and ``coarse`` give; in grid_sample's (default) layout."""
        height, width = fine.shape[-2:]
        upsampled = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        if self.offset is None:
            if values is coarse:
                return upsampled
            return F.interpolate(values, size=(height, width), mode="bilinear", align_corners=False)
        offset = conv_of_concat(self.offset, [fine, upsampled]).float()  # pixels of the fine grid, (dx, dy)
        if self.max_offset is not None:
            limit = self.max_offset * height / coarse.shape[-2]  # coarse pixels -> fine pixels
            offset = limit * torch.tanh(offset / limit)
        scale = torch.tensor((2.0 / width, 2.0 / height), device=fine.device)
        grid = _base_grid(height, width, offset) + offset.permute(0, 2, 3, 1) * scale
        return F.grid_sample(
            values.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
        ).to(values.dtype)


class FeatureAlignmentModule(nn.Module):
    """Aligned multi-scale pyramid and its fusion (see the module docstring)."""

    def __init__(
        self, in_widths: tuple[int, ...], dim: int, learned: bool = True, max_offset: float | None = None
    ):
        super().__init__()
        self.lateral = nn.ModuleList(ConvBNReLU(width, dim, kernel_size=1) for width in in_widths)
        self.top_down_align = nn.ModuleList(FlowAlign(dim, learned, max_offset) for _ in in_widths[:-1])
        self.smooth = nn.ModuleList(SeparableConvBNReLU(dim) for _ in in_widths[:-1])
        self.fusion_align = nn.ModuleList(FlowAlign(dim, learned, max_offset) for _ in in_widths[1:])
        self.fuse = ConvBNReLU(dim * len(in_widths), dim, kernel_size=1)

    def forward(self, encoder_features: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Fused finest-level map and the aligned pyramid (finest first)."""
        laterals = [lateral(f) for lateral, f in zip(self.lateral, encoder_features, strict=True)]
        pyramid = [laterals[-1]]
        for level in range(len(laterals) - 2, -1, -1):
            merged = laterals[level] + self.top_down_align[level](laterals[level], pyramid[0])
            pyramid.insert(0, self.smooth[level](merged))
        finest = pyramid[0]
        conv, batch_norm, relu = self.fuse
        if is_channels_last(finest):
            return relu(batch_norm(self._fuse_projected(finest, pyramid[1:]))), pyramid
        aligned = [finest] + [
            align(finest, level) for align, level in zip(self.fusion_align, pyramid[1:], strict=True)
        ]
        return relu(batch_norm(conv(torch.cat(aligned, dim=1)))), pyramid

    def _fuse_projected(self, finest: Tensor, coarser: list[Tensor]) -> Tensor:
        """The fuse convolution of [finest, aligned coarser levels] for CPU inference (channels-last), without
        the concatenation and mostly at coarse resolution: a 1x1 convolution is linear and bilinear
        resampling a convex combination, so they commute; each coarser level is projected by its slice of
        the weights on its own grid (4 to 64 times fewer pixels), then resampled, and the resampled
        projections are summed in grid_sample's layout before one conversion to channels-last. Measured on
        512-pixel tiles, 2 cores: the forward 13 % faster than concatenating (bench/README.md)."""
        conv = self.fuse[0]
        weights = conv.weight.split(finest.shape[1], dim=1)
        total = None
        for align, level, weight in zip(self.fusion_align, coarser, weights[1:], strict=True):
            warped = align.resample(finest, level, F.conv2d(level, weight))
            total = warped if total is None else total.add_(warped)
        fused = F.conv2d(finest, weights[0], conv.bias)
        return fused if total is None else fused.add_(total.contiguous(memory_format=torch.channels_last))
