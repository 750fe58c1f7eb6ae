"""The one training loop behind ``train_teacher`` and ``train_student``.

A role-specific *objective* turns a batch into a loss; everything else is shared here: seeding, the poly
learning-rate schedule, optional CUDA autocast, DistributedDataParallel, per-epoch validation,
best-on-validation model file, ``last.ckpt`` and exact resume, cancellation.

Choices (the paper is silent on them or assumes a GPU):
* Optimiser AdamW, learning rate decayed per step with the "poly" rule ``(1 - step/total) ** 0.9`` common in
  semantic segmentation.
* Randomness: python, numpy and torch generators are reseeded at the start of every epoch from
  (seed, epoch, rank); the data order and the random windows of an epoch therefore depend only on those, which
  makes ``resume`` exact (with ``num_workers=0`` or any fixed number of workers) without storing generator
  states.
* Validation: pooled confusion matrix over a regular grid of tiles of the validation scenes; the model with
  the best validation mIoU is kept as ``best.pt`` (with no validation scenes, the lowest training loss
  decides).
* Cancel: ``should_stop`` is polled between batches; the unfinished epoch is discarded (neither validated nor
  checkpointed) and the best model so far is kept.
* Several processes (torchrun): gradients are averaged by DDP, BatchNorm buffers are copied from rank 0 after
  each epoch so every rank validates the same model; validation tiles are shared out between ranks and the
  confusion matrices summed. Only rank 0 writes files and calls the callbacks.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from hfd_core.errors import Canceled, InputError
from hfd_core.metrics import confusion_matrix, scores
from hfd_core.modelfile import ModelMetadata, save_model
from hfd_core.train.checkpoint import BEST_MODEL_NAME, CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from hfd_core.train.config import TrainCallbacks, TrainConfig
from hfd_core.train.distributed import DistContext, all_reduce_sum, any_process, barrier
from hfd_core.train.progress import ProgressBar

HISTORY_NAME = "history.json"
POLY_POWER = 0.9


class Objective(Protocol):
    """Role-specific part of training: which input the model reads and how a batch becomes a loss."""

    input_key: str  # "sar" or "eo"

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its named parts (detached or not) for one batch already on the device."""
        ...


@dataclass
class TrainResult:
    """Outcome of a run: the best model file (None if no epoch finished), the checkpoint and the history."""

    best_path: Path | None
    checkpoint_path: Path
    best_epoch: int
    best_metrics: dict
    history: list[dict] = field(default_factory=list)
    canceled: bool = False


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return seed * 1_000_003 + epoch * 1_009 + rank


def autocast_context(ctx: DistContext, enabled: bool) -> AbstractContextManager:
    """Mixed precision on CUDA only; a no-op on CPU."""
    if enabled and ctx.device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return nullcontext()


#: Settings a resumed run must share with the run that wrote its checkpoint (``epochs`` may grow).
RESUME_SETTINGS = (
    "tile_size", "batch_size", "lr", "weight_decay", "samples_per_epoch", "seed", "augment",
    "distill_weight", "logit_distill_weight", "pseudo_labels", "consistency_weight",
)  # fmt: skip


def _check_resumable(path: Path, stored: dict, config: TrainConfig) -> None:
    """InputError when ``config`` differs from the checkpoint's in a ``RESUME_SETTINGS`` setting: the run
    would go on as another one, its history mixing both (a distilled run resumed without distillation)."""
    now = config.to_dict()
    changed = [
        f"{name} {stored[name]} -> {now[name]}"
        for name in RESUME_SETTINGS
        if name in stored and stored[name] != now[name]
    ]
    if changed:
        raise InputError(
            f"{path} was written with other settings ({'; '.join(changed)}): resume with the run's own "
            "settings, or start a new run in another folder"
        )


def _epoch_line(epoch: int, epochs: int, values: dict, improved: bool) -> str:
    """``epoch 3/20: train loss 0.4123, val mIoU 0.5512 (best so far)``."""
    scores = f", val mIoU {values['val_miou']:.4f}" if "val_miou" in values else ""
    return f"epoch {epoch}/{epochs}: train loss {values['train_loss']:.4f}{scores}" + (
        " (best so far)" if improved and scores else ""
    )


def _to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running stats) to every rank."""
    if ctx.is_distributed:
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, src=0)


@torch.no_grad()
def validate(
    model: nn.Module,
    input_key: str,
    dataset: Dataset,
    num_classes: int,
    config: TrainConfig,
    ctx: DistContext,
) -> dict:
    """Scores of ``model`` on the grid tiles of ``dataset``, pooled over tiles (and ranks)."""
    model.eval()
    shard = Subset(dataset, list(range(ctx.rank, len(dataset), ctx.world_size)))
    loader = DataLoader(shard, batch_size=config.batch_size, shuffle=False, num_workers=config.num_workers)
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=ctx.device)
    for batch in loader:
        batch = _to_device(batch, ctx.device)
        with autocast_context(ctx, config.amp):
            logits = model(batch[input_key])
        matrix += confusion_matrix(logits.argmax(1), batch["label"], num_classes).to(ctx.device)
    all_reduce_sum(matrix, ctx)
    return scores(matrix.cpu())


def _make_loader(dataset: Dataset, config: TrainConfig, ctx: DistContext, epoch: int) -> DataLoader:
    generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch, 0))
    if ctx.is_distributed:
        sampler = DistributedSampler(
            dataset,
            num_replicas=ctx.world_size,
            rank=ctx.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        return DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=config.num_workers,
            pin_memory=ctx.device.type == "cuda",
        )
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
        num_workers=config.num_workers,
        pin_memory=ctx.device.type == "cuda",
    )


def _steps_per_epoch(dataset_len: int, config: TrainConfig, ctx: DistContext) -> int:
    steps = (dataset_len // ctx.world_size) // config.batch_size
    if steps < 1:
        raise InputError(
            f"{dataset_len} samples per epoch (--samples-per-epoch) are fewer than one batch for each "
            f"process: give at least the batch size times the processes, "
            f"{config.batch_size} x {ctx.world_size}"
        )
    return steps


def _poly(total_steps: int) -> Callable[[int], float]:
    return lambda step: max(1.0 - step / total_steps, 0.0) ** POLY_POWER


def _score(values: dict) -> float:
    """Higher is better: validation mIoU, or minus the training loss when there is no validation."""
    return values["val_miou"] if "val_miou" in values else -values["train_loss"]


def _epoch_values(losses: dict[str, float], val: dict | None) -> dict:
    values = {f"train_{name}": value for name, value in losses.items()}
    if val is not None:
        values.update(
            {
                "val_miou": float(val["miou"]),
                "val_oa": float(val["oa"]),
                "val_kappa": float(val["kappa"]),
                "val_iou": [float(v) for v in val["iou"]],
            }
        )
    return values


def _train_epoch(
    model: nn.Module,
    objective: Objective,
    batches: Iterator,
    steps: int,
    optimizer,
    scheduler,
    scaler,
    config: TrainConfig,
    callbacks: TrainCallbacks,
    ctx: DistContext,
    epoch: int,
) -> dict[str, float] | None:
    """One epoch; returns the mean of each loss part, or None when cancelled."""
    model.train()
    sums: dict[str, float] = {}
    bar = ProgressBar(steps, f"epoch {epoch}/{config.epochs}", enabled=config.progress and ctx.is_main)
    try:
        for step, batch in enumerate(batches):
            stop = ctx.is_main and callbacks.should_stop is not None and callbacks.should_stop()
            if any_process(stop, ctx):
                return None
            batch = _to_device(batch, ctx.device)
            with autocast_context(ctx, config.amp):
                loss, parts = objective.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            parts = {"loss": loss, **parts}
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            bar.update(f"loss {sums['loss'] / (step + 1):.4f}")
            if ctx.is_main and callbacks.on_progress is not None:
                callbacks.on_progress(100.0 * ((epoch - 1) + (step + 1) / steps) / config.epochs)
    finally:
        bar.close()
    totals = torch.tensor(list(sums.values()), dtype=torch.float64, device=ctx.device)
    all_reduce_sum(totals, ctx)
    return {
        name: float(total) / (steps * ctx.world_size)
        for name, total in zip(sums, totals.tolist(), strict=True)
    }


def fit(
    model: nn.Module,
    objective: Objective,
    metadata: ModelMetadata,
    train_set: Dataset,
    val_set: Dataset | None,
    config: TrainConfig,
    callbacks: TrainCallbacks,
    ctx: DistContext,
) -> TrainResult:
    """Train ``model`` (already on ``ctx.device``); keep the best epoch as a model file built on ``metadata``.

    ``metadata.training`` and ``metadata.metrics`` are filled in here; the rest (role, bands, stats, classes)
    comes from the caller.
    """
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    best_path = out_dir / BEST_MODEL_NAME
    num_classes = metadata.config.num_classes
    steps = _steps_per_epoch(len(train_set), config, ctx)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    module = model
    if ctx.is_distributed:
        model = DistributedDataParallel(
            module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _poly(steps * config.epochs))
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=config.amp and ctx.device.type == "cuda")

    start_epoch, best_epoch, best_score, history = 0, 0, -math.inf, []
    if config.resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, ctx.device)
        _check_resumable(checkpoint_path, state.get("config", {}), config)
        try:
            module.load_state_dict(state["model"])
        except RuntimeError:
            raise InputError(
                f"{checkpoint_path} holds another network than this run's (other bands, classes or widths): "
                "give another run folder, or the options of the run that wrote it"
            ) from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best_epoch, best_score = state["epoch"], state["best_epoch"], state["best_score"]
        history = list(state["history"])

    canceled = False
    for epoch in range(start_epoch + 1, config.epochs + 1):
        seed_everything(epoch_seed(config.seed, epoch, ctx.rank))
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)  # random windows differ per epoch, reproducibly (exact resume)
        loader = _make_loader(train_set, config, ctx, epoch)
        losses = _train_epoch(
            model, objective, iter(loader), steps, optimizer, scheduler, scaler, config, callbacks, ctx, epoch
        )
        if losses is None:
            canceled = True
            break
        _sync_buffers(module, ctx)
        val = validate(module, objective.input_key, val_set, num_classes, config, ctx) if val_set else None
        values = {"epoch": epoch, **_epoch_values(losses, val)}
        history.append(values)
        improved = _score(values) > best_score
        if improved:
            best_epoch, best_score = epoch, _score(values)
        if config.progress and ctx.is_main:  # the bar shows the training loss; validation once per epoch
            print(_epoch_line(epoch, config.epochs, values, improved), file=sys.stderr)
        if ctx.is_main:
            if improved:
                metadata.training = {
                    **metadata.training,
                    "epochs_trained": epoch,
                    "best_epoch": epoch,
                    "config": config.to_dict(),
                }
                metadata.metrics = {k: v for k, v in values.items() if k.startswith("val_")}
                save_model(best_path, module, metadata)
            save_checkpoint(
                checkpoint_path,
                {
                    "model": module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "best_epoch": best_epoch,
                    "best_score": best_score,
                    "history": history,
                    "config": config.to_dict(),
                },
            )
            _write_history(out_dir / HISTORY_NAME, history)
            if callbacks.on_epoch_end is not None:
                callbacks.on_epoch_end(epoch, values)
        barrier(ctx)

    if best_epoch == 0:
        if canceled:
            raise Canceled("training stopped before the first epoch finished; no model was kept")
        raise InputError("no epoch to train: increase epochs or leave out resume of a finished run")
    best_metrics = next(v for v in history if v["epoch"] == best_epoch)
    return TrainResult(
        best_path=best_path,
        checkpoint_path=checkpoint_path,
        best_epoch=best_epoch,
        best_metrics=best_metrics,
        history=history,
        canceled=canceled,
    )


def _write_history(path: Path, history: list[dict]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(history, indent=1))
    tmp.replace(path)
