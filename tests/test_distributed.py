"""DistributedDataParallel path: two CPU processes (gloo) train on a tiny dataset."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from test_train_fixtures import tiny_config, toy_scenes

from hfd_core.train import train_teacher
from hfd_core.train.checkpoint import load_checkpoint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    scenes = toy_scenes(5)
    captured = {}

    def keep_model(model, *args, **kwargs):  # fit gets the bare network and wraps it for DDP itself
        captured["model"] = model
        return original_fit(model, *args, **kwargs)

    import hfd_core.train.api as api

    original_fit = api.fit
    api.fit = keep_model
    result = train_teacher(scenes[:4], scenes[4:], tiny_config(os.path.join(out_dir, "run"), epochs=2))
    torch.save(
        {"state": captured["model"].state_dict(), "history": result.history},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )


def test_two_processes_end_with_identical_weights(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0["state"][k], rank1["state"][k]) for k in rank0["state"])
    assert rank0["history"] == rank1["history"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "history.json", "last.ckpt"]
    checkpoint = load_checkpoint(tmp_path / "run" / "last.ckpt")
    assert checkpoint["epoch"] == 2
    assert all(torch.equal(checkpoint["model"][k], rank0["state"][k]) for k in rank0["state"])
