"""Defaults of fine-tuning (``hfd_core.train.finetune.finetune``), shared by hfd:finetune and the dialog.

Here, not in ``hfd_core.train``, because the plugin builds its parameters from them without importing torch.
README "Fine-tuning defaults" has the measurements behind them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneDefaults:
    epochs: int = 10
    lr: float = 1e-3
    distill_weight: float = 1.0
    pseudo_label_confidence: float = 0.0
    tile_size: int = 256
    validation_fraction: float = 0.2


DEFAULTS = FinetuneDefaults()
