"""HFD-Net segmentation network, one class for the EO teacher and the SAR student.

Teacher and student share this architecture and differ only in ``in_channels`` (and their weights), so their
aligned pyramid features have identical shapes and can be compared level by level by the distillation loss.

Design (the paper gives the idea, not a CPU budget; our choices):
* Encoder: four stages at strides 2, 4, 8, 16 with ``widths`` channels. Stage 1 is a 3x3 stride-2 stem plus
  one 3x3 convolution; stages 2-4 each start with a 3x3 stride-2 convolution followed by one residual
  basic block.
  Stride 16 (not 32) keeps detail for 10 m pixels and lets 16-pixel multiples be the only size constraint.
* Feature alignment module (``models.alignment``): aligned top-down pyramid of ``align_dim`` channels at the
  four strides, fused on the stride-2 grid after learned-offset alignment of every coarser level; offsets are
  bounded to ``max_offset`` coarse pixels (``None``: unbounded, as in model files saved before the bound).
* Head: 1x1 classifier on the fused stride-2 map, bilinear upsampling to the input size.

Default size (``HFDNetConfig(in_channels=2, num_classes=5)``), measured by ``tests/test_models.py`` with
``models.complexity``: 1.16 M parameters, 2.63 GFLOPs (2 x multiply-adds of convolutions) per 256x256 tile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch.nn.functional as F
from torch import Tensor, nn

from hfd_core.models.alignment import FeatureAlignmentModule
from hfd_core.models.blocks import ConvBNReLU, ResidualBlock

#: Input height and width must be multiples of this (the coarsest stride).
SIZE_MULTIPLE = 16


@dataclass
class HFDNetConfig:
    """Architecture of an HFD-Net; stored in every model file."""

    in_channels: int
    num_classes: int
    widths: tuple[int, ...] = (24, 48, 96, 192)
    align_dim: int = 64
    align: bool = True
    max_offset: float | None = 1.0

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) != 4:
            raise ValueError(f"widths needs 4 stages (strides 2, 4, 8, 16), got {self.widths}")
        if self.in_channels < 1 or self.num_classes < 2:
            raise ValueError("in_channels must be >= 1 and num_classes >= 2")
        if self.max_offset is not None and self.max_offset <= 0:
            raise ValueError(f"max_offset must be positive or None, got {self.max_offset}")

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    def architecture(self) -> dict:
        """``to_dict`` without the fields the data decide (input channels, classes): what another network
        needs to be built the same way (``TrainConfig.model``)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("in_channels", "num_classes")}

    @classmethod
    def from_dict(cls, values: dict) -> HFDNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown HFDNetConfig fields: {sorted(unknown)}")
        return cls(**{"max_offset": None, **values})  # files from before the bound: unbounded offsets


class Encoder(nn.Module):
    """Four stages at strides 2, 4, 8, 16; returns the output of each."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        first = widths[0]
        stages = [nn.Sequential(ConvBNReLU(in_channels, first, stride=2), ConvBNReLU(first, first))]
        stages += [
            nn.Sequential(ConvBNReLU(before, after, stride=2), ResidualBlock(after))
            for before, after in zip(widths[:-1], widths[1:], strict=True)
        ]
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


class HFDNet(nn.Module):
    """Encoder, feature alignment module, classifier (see the module docstring)."""

    def __init__(self, config: HFDNetConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.in_channels, config.widths)
        self.alignment = FeatureAlignmentModule(
            config.widths, config.align_dim, learned=config.align, max_offset=config.max_offset
        )
        self.classifier = nn.Conv2d(config.align_dim, config.num_classes, 1)

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits at input resolution; with ``return_features`` also the aligned pyramid, finest first."""
        height, width = x.shape[-2:]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(
                f"input height and width must be multiples of {SIZE_MULTIPLE}, got {height}x{width}"
            )
        fused, pyramid = self.alignment(self.encoder(x))
        logits = F.interpolate(
            self.classifier(fused), size=(height, width), mode="bilinear", align_corners=False
        )
        return (logits, pyramid) if return_features else logits
