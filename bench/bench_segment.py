"""Benchmark of the streaming tiled inference ``segment_raster`` (a benchmark, not a test).

    .venv/bin/python bench/bench_segment.py [--quick] [--model resources/models/student.pt]

Reports, in one run, on this machine (see bench/README.md for the figures and how to read them):
1. throughput ratio: bare forward time / end-to-end ``segment_raster`` time (read, normalise, forward, blend,
   write) with the same model on the same tiles: the benchmark records the batch sizes segment_raster sends
   to the network and replays exactly those batches in the bare loop. Best of ``--repeats`` interleaved runs,
   after one warm-up forward (target >= 0.9);
2. peak memory: peak RSS (``VmHWM``, see ``rss_mb``) of a fresh process per size segmenting a 25 MP and a
   400 MP raster (``--quick``: 0.25 and 4 MP), both written by the benchmark as tiled float32 GeoTIFFs; the
   ratio large / small (target <= 1.2), and the same for the growth above the process's RSS before
   segmentation. This part uses a tiny network (``TINY_CONFIG``) so that 400 MP runs in minutes on a CPU: the
   network's activations are per batch, the same for both sizes, so they only raise both peaks alike;
3. megapixels per second end to end with ``--model`` (default: the bundled student).
The rasters live in a temporary folder under ``--work`` (runs/bench, git-ignored) and are deleted at the end;
results are printed and written to ``--work``/segment.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window
from torch import nn

from hfd_core.infer.tiled import segment_raster, tiling_defaults
from hfd_core.modelfile import ClassInfo, ModelMetadata, load_model, save_model
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.models.inference import inference_memory_format, prepare_for_inference

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = HFDNetConfig(2, 2, widths=(2, 2, 2, 2), align_dim=2, align=False)
BYTES_PER_PIXEL = 2 * 4  # two float32 bands


def write_raster(path: Path, height: int, width: int, block: int = 1024) -> Path:
    """A two-band dB raster (tiled 256 x 256, uncompressed) written window by window, never held whole."""
    profile = dict(
        driver="GTiff", width=width, height=height, count=2, dtype="float32", crs="EPSG:32633",
        transform=from_origin(500000, 5000000, 10, 10), tiled=True, blockxsize=256, blockysize=256,
        BIGTIFF="IF_SAFER",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, height, block):
            for col in range(0, width, block):
                window = Window(col, row, min(block, width - col), min(block, height - row))
                dst.write(
                    rng.normal(-14, 4, (2, window.height, window.width)).astype(np.float32), window=window
                )
    return path


@dataclass
class Record:
    """Batch sizes a network was given and the seconds its forward took."""

    batch_sizes: list[int] = field(default_factory=list)
    seconds: float = 0.0


class BatchRecorder(nn.Module):
    """The network unchanged, recording the size of every batch it was given and the time it took. A copy
    (``segment_raster`` prepares a copy of the network it is given) records into the same ``record``."""

    def __init__(self, network: nn.Module, record: Record | None = None):
        super().__init__()
        self.network = network
        self.record = record or Record()

    def __deepcopy__(self, memo: dict) -> BatchRecorder:
        return BatchRecorder(copy.deepcopy(self.network, memo), self.record)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.record.batch_sizes.append(x.shape[0])
        started = time.perf_counter()
        logits = self.network(x)
        self.record.seconds += time.perf_counter() - started
        return logits


def throughput(model_path: Path, raster: Path, out: Path, batch: int | None, repeats: int) -> dict:
    network, metadata = load_model(model_path)
    cpu = torch.device("cpu")
    network = prepare_for_inference(network, cpu)  # as segment_raster runs it
    recorder = BatchRecorder(network)
    tile, default_batch = tiling_defaults(metadata, cpu)
    batch = batch or default_batch
    inputs = torch.randn(batch, metadata.config.in_channels, tile, tile)
    inputs = inputs.contiguous(memory_format=inference_memory_format(cpu))
    with torch.no_grad():
        network(inputs)  # one-time warm-up of the process, not of a run
    end_to_end, bare, inside = [], [], []
    for _ in range(repeats):  # interleaved, so load from other processes hits both alike
        recorder.record = Record()
        started = time.perf_counter()
        result = segment_raster(
            raster, out, (recorder, metadata), tile_size=tile, batch_size=batch, device="cpu"
        )
        end_to_end.append(time.perf_counter() - started)
        inside.append(recorder.record.seconds)
        started = time.perf_counter()
        with torch.no_grad():
            for size in recorder.record.batch_sizes:
                torch.softmax(network(inputs[:size]), dim=1)
        bare.append(time.perf_counter() - started)
    assert sum(recorder.record.batch_sizes) == result.tiles
    return {
        "model": str(model_path),
        "tile_size": tile,
        "tiles": result.tiles,
        "batches": len(recorder.record.batch_sizes),
        "megapixels": result.pixels / 1e6,
        "end_to_end_s": end_to_end,
        "bare_forward_s": bare,
        "forward_within_end_to_end_s": inside,
        "throughput_ratio": min(bare) / min(end_to_end),
        "forward_share_of_end_to_end": max(f / e for f, e in zip(inside, end_to_end, strict=True)),
        "megapixels_per_s": result.pixels / 1e6 / min(end_to_end),
        "bare_megapixels_per_s_of_tiles": result.tiles * tile * tile / 1e6 / min(bare),
    }


def rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB. Not ``getrusage``: Linux carries ru_maxrss
    over ``exec``, so a child started by this (large) benchmark process would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(raster: str, model: str, out: str) -> None:
    """Runs in the fresh process: RSS before and peak RSS after segmenting (MB), as JSON on stdout."""
    load_model(model)  # what segment_raster loads anyway; part of the baseline
    before = rss_mb("VmRSS")
    segment_raster(raster, out, model, device="cpu")
    print(json.dumps({"baseline_mb": before, "peak_mb": rss_mb("VmHWM")}))


def peak_memory(raster: Path, model: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--child", str(raster), str(model), str(out)]
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {**json.loads(output.strip().splitlines()[-1]), "seconds": time.perf_counter() - started}


def tiny_model(path: Path) -> Path:
    torch.manual_seed(0)
    classes = [ClassInfo(i, f"class {i}", "#808080") for i in range(TINY_CONFIG.num_classes)]
    metadata = ModelMetadata("student", TINY_CONFIG, ["VV", "VH"], "sar_db", [-14, -14], [4, 4], classes)
    save_model(path, HFDNet(TINY_CONFIG), metadata)
    return path


def check_disk(folder: Path, largest_pixels: int) -> None:
    """Stop before writing when the rasters (input + outputs, with room to spare) would not fit."""
    need = 2 * largest_pixels * BYTES_PER_PIXEL
    free = shutil.disk_usage(folder).free
    if free < need:
        sys.exit(f"{folder}: {free / 1e9:.1f} GB free, the benchmark needs {need / 1e9:.1f} GB")


def memory(model: Path, folder: Path, sides: dict[str, int]) -> dict:
    report = {}
    for name, side in sides.items():
        raster = write_raster(folder / f"{name}.tif", side, side)
        report[name] = {"megapixels": side * side / 1e6, **peak_memory(raster, model, folder / "m.tif")}
        raster.unlink()
    small, large = report["small"], report["large"]
    report["peak_ratio"] = large["peak_mb"] / small["peak_mb"]
    report["growth_ratio"] = (large["peak_mb"] - large["baseline_mb"]) / max(
        small["peak_mb"] - small["baseline_mb"], 1.0
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "resources" / "models" / "student.pt")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of the benchmark")
    parser.add_argument("--batch", type=int, help="tiles per batch (default: segment_raster's on CPU)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=("throughput", "memory"), help="run one part (1 and 3, or 2)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--child", nargs=3, metavar=("RASTER", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    throughput_side = 1024 if args.quick else 2048
    sides = {"small": 500, "large": 2000} if args.quick else {"small": 5000, "large": 20000}
    args.work.mkdir(parents=True, exist_ok=True)
    check_disk(args.work, sides["large"] ** 2)
    report = {
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        folder = Path(folder)
        if args.only != "memory":
            raster = write_raster(folder / "throughput.tif", throughput_side, throughput_side)
            report["throughput"] = throughput(args.model, raster, folder / "t.tif", args.batch, args.repeats)
            raster.unlink()
        if args.only != "throughput":
            report["memory"] = memory(tiny_model(folder / "tiny.pt"), folder, sides)
    report["load_average_at_end"] = os.getloadavg()
    (args.work / "segment.json").write_text(json.dumps(report, indent=2))
    print_report(report, args.repeats)


def print_report(report: dict, repeats: int) -> None:
    if "throughput" in report:
        t = report["throughput"]
        print(
            f"(1) throughput ratio bare forward / end-to-end: {t['throughput_ratio']:.3f} "
            f"({t['tiles']} tiles of {t['tile_size']} in {t['batches']} batches, {t['megapixels']:.1f} MP; "
            f"best of {repeats}: {min(t['bare_forward_s']):.1f} s / {min(t['end_to_end_s']):.1f} s); the "
            f"forward pass inside segment_raster took {t['forward_share_of_end_to_end']:.3f} of its time"
        )
    if "memory" in report:
        m = report["memory"]
        growth = {name: m[name]["peak_mb"] - m[name]["baseline_mb"] for name in ("small", "large")}
        print(
            f"(2) peak RSS {m['large']['megapixels']:.0f} MP / {m['small']['megapixels']:.2f} MP: "
            f"{m['peak_ratio']:.3f} ({m['large']['peak_mb']:.0f} MB / {m['small']['peak_mb']:.0f} MB); "
            f"growth above the pre-run RSS: {m['growth_ratio']:.3f} "
            f"({growth['large']:.0f} MB / {growth['small']:.0f} MB); tiny network {TINY_CONFIG}"
        )
    if "throughput" in report:
        print(
            f"(3) {report['throughput']['megapixels_per_s']:.3f} MP/s end to end with "
            f"{report['throughput']['model']} ({report['torch_threads']} torch threads, "
            f"{report['cpu_count']} CPUs, load average {report['load_average_at_start'][0]:.1f} at start)"
        )


if __name__ == "__main__":
    main()
