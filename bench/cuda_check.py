"""CUDA check, for a machine with an NVIDIA GPU (the CPU machines cannot run it; the suite never needs it).

    python bench/cuda_check.py [--out DIR]

1. Each bundled model (land cover, water ensemble) segments a 2048 x 2048 mosaic of the repository's
   Sentinel-1 sample on CUDA and on CPU through ``segment_raster``: share of pixels with the same class,
   largest confidence difference, time of each.
2. A small SAR-only student trains on CUDA with mixed precision for two epochs, then resumes to three, on four
   crops of the sample labelled by the filtered, bounded Otsu recipe (a smoke test of the CUDA training path,
   not a model); its model file loads on CPU.

Prints one JSON object (also ``DIR/cuda_check.json``); exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

from hfd_core.baselines import filtered_bounded_otsu_water
from hfd_core.data import Scene
from hfd_core.data.raster import read_float
from hfd_core.infer.tiled import segment_raster
from hfd_core.modelfile import bundled_model_path, load_model
from hfd_core.train import TrainConfig, train_student

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "samples" / "s1_demo_vv_vh_db.tif"
MOSAIC_REPEATS = 8
#: Class maps on CUDA (mixed precision) and CPU must agree on at least this share of pixels.
MIN_AGREEMENT = 0.995


def mosaic(path: Path) -> Path:
    """The sample repeated ``MOSAIC_REPEATS`` times in each direction (mirrored, so no seams in the data)."""
    with rasterio.open(SAMPLE) as src:
        data, profile = src.read(), src.profile
    tile = np.concatenate([data, data[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[:, :, ::-1]], axis=2)
    data = np.tile(tile, (1, MOSAIC_REPEATS // 2, MOSAIC_REPEATS // 2))
    profile.update(height=data.shape[1], width=data.shape[2], tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def compare_devices(raster: Path, model: Path, workdir: Path) -> dict:
    maps, confidence, seconds = {}, {}, {}
    for device in ("cuda", "cpu"):
        output, conf = workdir / f"{model.stem}_{device}.tif", workdir / f"{model.stem}_{device}_conf.tif"
        start = time.perf_counter()
        segment_raster(raster, output, model, device=device, confidence_path=conf)
        seconds[device] = round(time.perf_counter() - start, 2)
        with rasterio.open(output) as src, rasterio.open(conf) as csrc:
            maps[device], confidence[device] = src.read(1), csrc.read(1).astype(np.float32)
    return {
        "agreement": float((maps["cuda"] == maps["cpu"]).mean()),
        "max_confidence_difference_percent": float(np.abs(confidence["cuda"] - confidence["cpu"]).max()),
        "seconds": seconds,
    }


def train_on_cuda(workdir: Path) -> dict:
    sar = read_float(SAMPLE)
    label = filtered_bounded_otsu_water(sar[1]).astype(np.uint8)
    scenes = [
        Scene(f"crop{i}", f"g{i}", sar[:, r : r + 128, c : c + 128], None, label[r : r + 128, c : c + 128],
              ["VV", "VH"], [])
        for i, (r, c) in enumerate([(0, 0), (0, 128), (128, 0), (128, 128)])
    ]  # fmt: skip
    config = TrainConfig(
        out_dir=str(workdir / "train"), epochs=2, batch_size=4, tile_size=64, samples_per_epoch=32,
        device="cuda", amp=True, distill_weight=0.0, model={"widths": (8, 16, 16, 16), "align_dim": 8},
        progress=False,
    )  # fmt: skip
    first = train_student(scenes[:3], scenes[3:], None, config)
    config.epochs, config.resume = 3, True
    resumed = train_student(scenes[:3], scenes[3:], None, config)
    network, _ = load_model(resumed.best_path, "cpu")
    losses = [row["train_loss"] for row in resumed.history]
    return {
        "epochs": [row["epoch"] for row in resumed.history],
        "train_loss": losses,
        "finite": bool(np.all(np.isfinite(losses))),
        "first_run_epochs": len(first.history),
        "loads_on_cpu": next(network.parameters()).device.type == "cpu",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write cuda_check.json here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        raster = mosaic(workdir / "mosaic.tif")
        for name in ("student", "water_student"):
            report[name] = compare_devices(raster, bundled_model_path(name), workdir)
        report["training"] = train_on_cuda(workdir)
    passed = all(report[name]["agreement"] >= MIN_AGREEMENT for name in ("student", "water_student"))
    training = report["training"]
    passed = passed and training["finite"] and training["epochs"] == [1, 2, 3] and training["loads_on_cpu"]
    report["passed"] = passed
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cuda_check.json").write_text(text)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
