"""Small building blocks shared by the encoder and the alignment module."""

from __future__ import annotations

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
