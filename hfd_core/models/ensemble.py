"""An ensemble of HFD-Nets of the same task (e.g. one per training seed): class probabilities averaged.

Why: with three calibrated water chips to learn from, the water student's training is unstable; over five
seeds its leave-one-location-out pooled water IoU ranged from 0.19 to 0.89, and the average of the seeds'
probabilities is far steadier than any one seed (docs/experiments/water_model.md). Averaging probabilities,
not weights: seeds start from different random weights, so their weights cannot be averaged.

Each member keeps the input standardisation it was trained with. The ensemble takes inputs standardised with
member 0's statistics (the model file's ``mean`` and ``std``) and gives member ``i`` its own by the exact
per-channel affine map ``x * std_0 / std_i + (mean_0 - mean_i) / std_i``, exact on valid pixels (nodata,
0 after member 0's standardisation, reaches member ``i`` as ``(mean_0 - mean_i) / std_i``: a member's
statistics differ by a few per cent when only its validation split differs). The output is the logarithm of
the mean probabilities, so softmax, argmax and confidence downstream see the averaged probabilities.
An ensemble predicts; it is not trained further (``return_features`` is refused).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hfd_core.models.hfdnet import HFDNet, HFDNetConfig

#: Floor of the averaged probabilities before the logarithm (no -inf logits).
MIN_PROBABILITY = 1e-8


class HFDEnsemble(nn.Module):
    """Members ``HFDNet(configs[i])`` trained with input statistics ``means[i]``, ``stds[i]`` (a model file's
    members agree on inputs and classes: ``ModelMetadata.validate`` checks that before this is built)."""

    def __init__(self, configs: list[HFDNetConfig], means: list[list[float]], stds: list[list[float]]):
        super().__init__()
        if not len(configs) == len(means) == len(stds) >= 2:
            raise ValueError("an ensemble needs two or more members, each with its means and stds")
        self.members = nn.ModuleList(HFDNet(config) for config in configs)
        mean, std = torch.tensor(means, dtype=torch.float32), torch.tensor(stds, dtype=torch.float32)
        # (members, channels): 2-D, so that a move to channels-last leaves them alone
        self.register_buffer("scale", std[0] / std, persistent=False)
        self.register_buffer("shift", (mean[0] - mean) / std, persistent=False)

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor:
        if return_features:
            raise ValueError("an ensemble has no single feature pyramid: it predicts, it is not trained")
        probabilities = sum(
            torch.softmax(member(x * self.scale[i, :, None, None] + self.shift[i, :, None, None]), dim=1)
            for i, member in enumerate(self.members)
        )
        return torch.log((probabilities / len(self.members)).clamp_min(MIN_PROBABILITY))
