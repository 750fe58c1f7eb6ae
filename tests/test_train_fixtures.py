"""Small synthetic scenes for the training and evaluation tests (test fixtures, not satellite data).

The label is a smooth random blob map; the "SAR" and "EO" channels are noisy functions of it, so a tiny
network can learn the task in a few steps.
"""

from __future__ import annotations

import numpy as np

from hfd_core.data import Scene
from hfd_core.train import TrainConfig

SAR_BANDS = ["VV", "VH"]
EO_BANDS = ["B02", "B03", "B04"]
TINY_MODEL = {"widths": (4, 8, 8, 8), "align_dim": 8}


def toy_scene(index: int, size: int = 32, seed: int = 0, with_eo: bool = True) -> Scene:
    rng = np.random.default_rng(seed * 1000 + index)
    coarse = rng.normal(size=(size // 8, size // 8))
    label = (np.kron(coarse, np.ones((8, 8))) > 0).astype(np.uint8)
    sar = np.stack([-20.0 + 10.0 * label, -25.0 + 6.0 * label]) + rng.normal(0, 1.5, (2, size, size))
    eo = np.stack([500.0 + 2000.0 * label, 800.0 + 1000.0 * label, 300.0 - 100.0 * label])
    eo = eo + rng.normal(0, 100.0, (3, size, size))
    return Scene(
        name=f"toy{index}",
        group=f"g{index}",
        sar=sar.astype(np.float32),
        eo=eo.astype(np.float32) if with_eo else None,
        label=label,
        sar_bands=list(SAR_BANDS),
        eo_bands=list(EO_BANDS) if with_eo else [],
    )


def toy_scenes(count: int = 4, size: int = 32, seed: int = 0) -> list[Scene]:
    return [toy_scene(i, size, seed) for i in range(count)]


def tiny_config(out_dir, **overrides) -> TrainConfig:
    values = dict(
        out_dir=str(out_dir),
        epochs=2,
        batch_size=4,
        lr=1e-2,
        tile_size=16,
        samples_per_epoch=8,
        model=dict(TINY_MODEL),
        seed=0,
        device="cpu",
        progress=False,
    )
    return TrainConfig(**{**values, **overrides})


def test_toy_scenes_are_deterministic_and_two_class():
    first, again = toy_scenes(2), toy_scenes(2)
    assert np.array_equal(first[1].sar, again[1].sar)
    assert set(np.unique(first[0].label)) == {0, 1}
    assert first[0].sar.shape == (2, 32, 32) and first[0].eo.shape == (3, 32, 32)
