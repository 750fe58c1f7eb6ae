"""Training settings shared by the teacher and the student loops, and the callbacks a caller can hook in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields


@dataclass
class TrainConfig:
    """Everything that decides a training run; stored in checkpoints and in the model file's metadata.

    ``model`` holds HFDNetConfig overrides (``widths``, ``align_dim``, ``align``); input channels and the
    number of classes come from the data. ``distill_scales`` lists the feature pyramid levels (0 = finest)
    that the feature distillation compares, ``None`` for all of them; ``distill_loss`` is "feature" (HFDM:
    standardised features compared position by position) or "affinity" (pair-wise similarities compared).
    ``consistency_weight`` weighs the student's tile-consistency loss (0: off). With ``pseudo_labels`` the
    teacher's classes fill missing labels where its probability is at least ``pseudo_label_confidence``.
    """

    out_dir: str = "runs/train"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    tile_size: int = 256
    samples_per_epoch: int = 512
    augment: bool = True
    distill_weight: float = 1.0
    distill_scales: tuple[int, ...] | None = None
    distill_loss: str = "feature"
    consistency_weight: float = 0.0
    logit_distill_weight: float = 0.0
    temperature: float = 2.0
    pseudo_labels: bool = False
    pseudo_label_confidence: float = 0.0
    model: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    resume: bool = False
    init_from: str | None = None
    progress: bool = True

    @property
    def uses_teacher(self) -> bool:
        """Whether the run reads a teacher: feature or logit distillation, or its pseudo-labels."""
        return self.distill_weight > 0 or self.logit_distill_weight > 0 or self.pseudo_labels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        if config.distill_scales is not None:
            config.distill_scales = tuple(config.distill_scales)
        return config


@dataclass
class TrainCallbacks:
    """Hooks for a caller (CLI, QGIS task). All optional; only the process of rank 0 calls them.

    ``on_epoch_end(epoch, values)`` gets the 1-based epoch and a dict with ``train_loss`` and the validation
    scores (``val_miou``, ``val_oa``, ``val_kappa``, ...). ``should_stop()`` is polled between batches:
    when it returns True training stops and the best model so far is kept. ``on_progress(percent)`` reports
    0..100. ``on_warning(message)`` gets what the user should know about the inputs (e.g. ignored labels).
    """

    on_epoch_end: Callable[[int, dict], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_progress: Callable[[float], None] | None = None
    on_warning: Callable[[str], None] | None = None
