"""Shared fixtures of the fine-tuning tests: the real Sen1Floods11 India_900498 triplet and tiny models.

A tiny teacher is trained for two epochs on the chip's EO and hand labels; the base student is an untrained
tiny network with the teacher's architecture, so fine-tuning has something to improve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from hfd_core.modelfile import read_metadata, save_model
from hfd_core.models import HFDNet

TINY = {"widths": (4, 8, 8, 8), "align_dim": 8}
TEACHER_EO_BANDS = [2, 3, 4, 8, 12, 13]  # B02 B03 B04 B08 B11 B12 of the 13-band L1C file
FAST = {"epochs": 2, "tile_size": 64, "batch_size": 4, "samples_per_epoch": 8, "lr": 1e-2}


def india_paths(shared_data: Path) -> dict[str, Path]:
    """The chip's S1Hand (SAR dB), S2Hand (13-band L1C) and LabelHand (1 water, 0 not, -1 nodata) files."""
    folder = shared_data / "sen1floods11"
    return {kind: folder / f"India_900498_{kind}.tif" for kind in ("S1Hand", "S2Hand", "LabelHand")}


def tiny_models(india: dict[str, Path], tmp_path_factory) -> dict[str, Path]:
    """A two-epoch tiny teacher on the chip's EO + labels, an untrained student of its architecture.

    Trained once per test session (kept in the session's temporary folder) and shared by the test modules.
    """
    folder = tmp_path_factory.getbasetemp() / "finetune_models"
    paths = {"teacher": folder / "teacher" / "best.pt", "student": folder / "student.pt"}
    if paths["student"].is_file():
        return paths
    from hfd_core.data import Scene
    from hfd_core.data.bundled import EO_BANDS
    from hfd_core.train import TrainConfig, train_teacher

    with rasterio.open(india["S2Hand"]) as src:
        eo = src.read(TEACHER_EO_BANDS).astype(np.float32)
    with rasterio.open(india["LabelHand"]) as src:
        hand = src.read(1)
    with rasterio.open(india["S1Hand"]) as src:
        sar = src.read().astype(np.float32)
    label = np.where(hand < 0, 255, hand).astype(np.uint8)
    scene = Scene("india", "india", sar, eo, label, ["VV", "VH"], list(EO_BANDS))
    config = TrainConfig(
        out_dir=str(folder / "teacher"), model=dict(TINY), progress=False, **{**FAST, "samples_per_epoch": 16}
    )
    teacher_path = train_teacher([scene], [], config).best_path
    assert teacher_path == paths["teacher"]
    student_meta = read_metadata(teacher_path)
    student_meta.role, student_meta.bands, student_meta.input_kind = "student", ["VV", "VH"], "sar_db"
    student_meta.config.in_channels = 2
    student_meta.mean = [float(np.nanmean(b)) for b in sar]
    student_meta.std = [float(np.nanstd(b)) for b in sar]
    student_meta.training = {}
    save_model(paths["student"], HFDNet(student_meta.config), student_meta)
    return paths
