"""Defaults and allowed ranges of fine-tuning (``hfd_core.train.finetune.finetune``), shared by hfd:finetune
and the dialog.

Here, not in ``hfd_core.train``, because the plugin builds its parameters from them without importing torch.
README "Fine-tuning defaults" and docs/experiments/finetune_defaults.md have the measurements behind them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: What a run without labels trains on: "rules", the spectral rules' classes on the EO where a rule claims the
#: pixel, none under cloud or snow, and the teacher's elsewhere (when the teacher fits the rules), or
#: "teacher", its classes everywhere.
TARGETS = ("rules", "teacher")


@dataclass(frozen=True)
class FinetuneDefaults:
    epochs: int = 10
    lr: float = 1e-3
    distill_weight: float = 1.0
    pseudo_label_confidence: float = 0.0
    targets: str = "rules"
    tile_size: int = 256
    validation_fraction: float = 0.2


DEFAULTS = FinetuneDefaults()

#: (lowest, highest) allowed value of each numeric setting, for hfd:finetune and the dialog alike.
RANGES: dict[str, tuple[int, int] | tuple[float, float]] = {
    "epochs": (1, 1000),
    "lr": (1e-7, 1.0),
    "distill_weight": (0.0, 100.0),
    "tile_size": (32, 4096),
    "validation_fraction": (0.0, 0.5),
}
