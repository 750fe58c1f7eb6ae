"""Small building blocks shared by the encoder and the alignment module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvBNReLU(nn.Sequential):
    """Convolution (no bias), batch norm, ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
    ):
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (ResNet basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.body(x))


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1: a cheap 3x3 smoothing at fine resolutions."""

    def __init__(self, channels: int):
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            ConvBNReLU(channels, channels, kernel_size=1),
        )


def is_channels_last(x: Tensor) -> bool:
    """Whether a 4-d tensor is laid out channels-last (NHWC), as ``models.inference`` lays them out on CPU."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def conv_of_concat(conv: nn.Conv2d, parts: list[Tensor]) -> Tensor:
    """``conv(torch.cat(parts, dim=1))``. On channels-last inputs (``models.inference``: CPU inference) it is
    computed as the sum of each part convolved with its slice of the weights, which skips the concatenated
    copy: on 2 CPU cores the copies of concatenation and its memory-format conversion took 30-40 % of the
    bundled student's forward (torch profiler, 512-pixel tiles). Otherwise (training, GPU) it concatenates,
    as before, so training is unchanged."""
    if not is_channels_last(parts[0]):
        return conv(torch.cat(parts, dim=1))
    total, start = None, 0
    for part in parts:
        weight = conv.weight[:, start : start + part.shape[1]]
        start += part.shape[1]
        bias = conv.bias if total is None else None
        out = F.conv2d(part, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        total = out if total is None else total.add_(out)
    return total
