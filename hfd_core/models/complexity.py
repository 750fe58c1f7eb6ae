"""Parameter and FLOP counts, to keep the default network within its CPU budget."""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, in_channels: int, size: int = 256) -> int:
    """FLOPs (2 x multiply-adds) of convolutions and linear layers for one ``size`` x ``size`` input."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += 2 * output[0].numel() * kernel

    def linear_hook(module: nn.Linear, _inputs, output) -> None:
        nonlocal total
        total += 2 * output[0].numel() * module.in_features

    handles = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, in_channels, size, size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
