"""Tile consistency: a network should classify a place the same whatever tile it is seen in.

Tiled inference shows the network windows of the user's tile size; a network trained on one window size can
change its classes with the amount of context around a pixel, so small tiles and one big tile disagree (not at
seams, which blending removes, but inside tiles). ``TileConsistencyLoss`` crops a random sub-window (a
``crop_fraction`` of the side, a multiple of ``multiple`` pixels, anywhere) out of the training window, runs
the network on the crop alone and pulls its class probabilities toward the full window's (detached: the view
with more context is the target), by KL divergence over the crop's valid pixels. Our addition, not part of
HFD-Net; it follows context-aware consistency training for segmentation (crops with less context made to agree
with more).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hfd_core.losses.distillation import LogitDistillationLoss


class TileConsistencyLoss(nn.Module):
    """KL(full-window probabilities || crop probabilities) on a random crop (see the module docstring)."""

    def __init__(self, crop_fraction: float = 0.5, multiple: int = 16):
        super().__init__()
        if not 0 < crop_fraction < 1:
            raise ValueError(f"crop_fraction must be in (0, 1), not {crop_fraction}")
        self.crop_fraction, self.multiple = crop_fraction, multiple
        self.divergence = LogitDistillationLoss(temperature=1.0)

    def crop(self, height: int, width: int) -> tuple[slice, slice]:
        """A random crop of the window, each side a multiple of ``multiple`` (at least one multiple)."""
        crop = []
        for size in (height, width):
            side = min(
                size, max(self.multiple, int(size * self.crop_fraction) // self.multiple * self.multiple)
            )
            start = int(torch.randint(0, size - side + 1, ()))
            crop.append(slice(start, start + side))
        return crop[0], crop[1]

    def forward(self, model: nn.Module, x: Tensor, logits: Tensor, valid: Tensor | None = None) -> Tensor:
        rows, cols = self.crop(*x.shape[-2:])
        crop_logits = model(x[..., rows, cols])
        crop_valid = None if valid is None else valid[..., rows, cols]
        return self.divergence(crop_logits, logits[..., rows, cols], crop_valid)
