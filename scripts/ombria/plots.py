"""Figures of the OMBRIA report: validation curves and side-by-side test examples."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch

from hfd_core.data import Scene
from hfd_core.data.ombria import flood_share
from hfd_core.modelfile import load_model
from hfd_core.train.evaluation import predict_scene

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (backend first)

COLOURS = ("tab:green", "tab:blue", "tab:orange", "tab:red")


def plot_curves(curves: dict[str, list[list[dict]]], path: Path) -> None:
    """Validation mIoU per epoch; ``curves``: legend label -> histories of its runs (one per seed)."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for (label, histories), colour in zip(curves.items(), COLOURS, strict=False):
        for index, rows in enumerate(histories):
            axis.plot(
                [r["epoch"] for r in rows],
                [r["val_miou"] for r in rows],
                color=colour,
                alpha=0.8,
                marker=".",
                label=label if index == 0 else None,
            )
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation mIoU (pooled)")
    axis.set_title("OMBRIA validation (id blocks carved from train)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def example_scenes(scenes: list[Scene], count: int) -> list[Scene]:
    """``count`` scenes whose flood fraction is closest to 40 % (informative examples), in name order."""
    chosen = sorted(scenes, key=lambda s: abs(flood_share(s.label) - 0.4))[:count]
    return sorted(chosen, key=lambda s: s.name)


def plot_examples(scenes: list[Scene], models: dict[str, Path], path: Path, count: int = 4) -> None:
    """Rows of test chips: S1 after, S2 after (false colour), mask, then each model's flood map."""
    loaded = {label: load_model(p) for label, p in models.items()}
    chosen = example_scenes(scenes, count)
    columns = ["S1 after", "S2 after", "mask (blue = flood)", *loaded]
    figure, axes = plt.subplots(len(chosen), len(columns), figsize=(2.2 * len(columns), 2.2 * len(chosen)))
    axes = np.atleast_2d(axes)
    for row, scene in enumerate(chosen):
        panels = [scene.sar[-1], np.moveaxis(scene.eo[-3:], 0, -1), scene.label]
        panels += [predict_scene(m, meta, scene, torch.device("cpu")) for m, meta in loaded.values()]
        for col, (title, panel) in enumerate(zip(columns, panels, strict=True)):
            axis = axes[row, col]
            if col == 0:
                axis.imshow(panel, cmap="gray")
            elif col == 1:
                axis.imshow(panel)
            else:
                axis.imshow(panel, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=9)
            if col == 0:
                axis.set_ylabel(scene.name.rsplit("-", 1)[-1], fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
