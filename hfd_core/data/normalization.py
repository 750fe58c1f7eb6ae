"""Per-band statistics (NaN-aware) and normalisation; the statistics travel in the model file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BandStats:
    """Mean and standard deviation of each band (plain lists, JSON-friendly)."""

    mean: list[float]
    std: list[float]


#: Band statistics are estimated from at most this many pixels, drawn reproducibly.
MAX_STATS_SAMPLES = 1_000_000


def compute_band_stats(arrays: list[np.ndarray]) -> BandStats:
    """Statistics of (C, H, W) arrays over their finite pixels, from at most ``MAX_STATS_SAMPLES`` pixels."""
    arrays = [a for a in arrays if a is not None]
    if not arrays:
        raise ValueError("no arrays to compute band statistics from")
    channels = arrays[0].shape[0]
    total = sum(a.shape[1] * a.shape[2] for a in arrays)
    keep = min(1.0, MAX_STATS_SAMPLES / total)
    rng = np.random.default_rng(0)
    samples = []
    for array in arrays:
        flat = array.reshape(channels, -1)
        if keep < 1.0:
            flat = flat[:, rng.random(flat.shape[1]) < keep]
        samples.append(flat.astype(np.float64))
    values = np.concatenate(samples, axis=1)
    mean = np.nanmean(values, axis=1)
    std = np.nanstd(values, axis=1)
    if not np.all(np.isfinite(mean)):
        raise ValueError("a band has no finite value in the training data")
    std = np.where(std > 1e-6, std, 1.0)
    return BandStats(mean=mean.tolist(), std=std.tolist())


def normalize(array: np.ndarray, stats: BandStats) -> np.ndarray:
    """``(x - mean) / std`` per band as float32; NaN becomes 0."""
    mean = np.asarray(stats.mean, np.float32)[:, None, None]
    std = np.asarray(stats.std, np.float32)[:, None, None]
    return np.nan_to_num((array.astype(np.float32) - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)
