"""The protocols of scripts/ombria_events.py: folds of consecutive ids that together cover every chip once,
training kept ``gap`` ids away from its fold; the control's folds of dealt id blocks with training cut to a
given size; and the learned threshold of nearest histograms. Fake chips only.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

from hfd_core.data import Scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
events = importlib.import_module("ombria_events")


def _chip(index: int, darkness: int = 0) -> Scene:
    """A 16 x 16 chip of speckled grey whose left half is flooded and darker by ``darkness`` grey levels."""
    rng = np.random.default_rng(index)
    sar = rng.integers(140, 160, (2, 16, 16))
    sar[1, :, :8] -= darkness
    label = np.zeros((16, 16), np.uint8)
    label[:, :8] = 1
    sar = sar.astype(np.uint8)
    group = f"ombria-train-block{index // 10}"
    return Scene(f"ombria-train-{index:04d}", group, sar, None, label, ["VV_before", "VV_after"])


def test_folds_cover_every_chip_once_and_keep_training_away_from_the_fold():
    chips = [_chip(i) for i in (7, 1, 2, 30, 31, 32, 60, 61, 90, 95)]
    pairs = events.folds(chips, 3, gap=5)
    held = [[events.chip_id(c) for c in out] for _, out in pairs]
    assert held == [[1, 2, 7, 30], [31, 32, 60], [61, 90, 95]]
    for (train, _), ids in zip(pairs, held, strict=True):
        trained = {events.chip_id(c) for c in train}
        assert trained.isdisjoint(ids)
        assert all(t < min(ids) - 5 or t > max(ids) + 5 for t in trained)
    assert {events.chip_id(c) for c in pairs[0][0]} == {60, 61, 90, 95}


def test_control_folds_deal_id_blocks_and_train_on_the_sizes_given():
    chips = [_chip(i) for i in range(60)]
    pairs = events.block_folds(chips, [20, 25, 30], seed=0)
    held = [sorted(events.chip_id(c) for c in out) for _, out in pairs]
    assert held[1] == [*range(10, 20), *range(40, 50)]
    assert sorted(i for ids in held for i in ids) == list(range(60))
    for (train, _), ids, size in zip(pairs, held, [20, 25, 30], strict=True):
        assert len(train) == size and {events.chip_id(c) for c in train}.isdisjoint(ids)


def test_learned_threshold_follows_the_nearest_training_chips():
    train = [_chip(i, darkness=100) for i in range(20)]
    flood = events.learned_threshold_maps(train, [_chip(50, darkness=100)])[0]
    assert flood[:, :5].all() and not flood[:, 11:].any()  # columns 5 to 10 blur across the 7 x 7 filter
