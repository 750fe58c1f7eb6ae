"""Full training state in ``last.ckpt``: written atomically every epoch, read back by ``--resume``.

The file is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: model, optimizer, scheduler and grad-scaler state dicts, the finished
epoch, the best validation score and its epoch, the per-epoch history, normalisation stats and the config.
Random generators are reseeded from (seed, epoch, rank) at the start of every epoch (see ``loop.py``), so the
seed and the epoch stored here fully determine the random state of the next epoch.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from hfd_core.errors import InputError
from hfd_core.files import write_atomically

CHECKPOINT_NAME = "last.ckpt"
BEST_MODEL_NAME = "best.pt"
CHECKPOINT_FORMAT = "hfd-train-checkpoint"


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (``files.write_atomically``)."""
    write_atomically(path, functools.partial(torch.save, {"format": CHECKPOINT_FORMAT, **state}))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``; InputError when the file is something else."""
    try:
        state = torch.load(Path(path), map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files; its text can advise
        raise InputError(  # loading the file unsafely, so only the type is kept
            f"cannot read training checkpoint {path} ({type(exc).__name__}): the file is damaged or not a "
            "checkpoint; delete it to start the run again, or give another run folder"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not an HFD-Net training checkpoint")
    return state
