"""Benchmark of the streaming tiled inference (a benchmark, not a test).

    python bench/bench_segment.py [--quick] [--model resources/models/student.pt]

Reports, in one run, on this machine:
1. throughput ratio: end-to-end ``segment_raster`` (read, normalise, forward, blend, write) against the bare
   forward pass of the same model on the same number of tiles with the same batch size (target >= 0.9);
2. peak memory ratio: peak RSS of a fresh process segmenting a large raster vs a raster 16 times smaller
   (25 MP vs 400 MP; ``--quick``: 4 MP vs 64 MP), both written here as tiled float32 GeoTIFFs (target <= 1.2).
   This part uses a tiny network so that the large case runs in minutes on a CPU; memory of the network's
   activations does not depend on the raster size anyway;
3. megapixels per second of the end-to-end run with the given model.
Results are printed and written to ``runs/bench/segment.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from hfd_core.infer.tiled import segment_raster
from hfd_core.modelfile import ClassInfo, ModelMetadata, load_model, save_model
from hfd_core.models import HFDNet, HFDNetConfig

REPO = Path(__file__).resolve().parents[1]


def write_raster(path: Path, side: int, block: int = 1024) -> Path:
    """A ``side`` x ``side`` two-band dB raster written window by window (never held in memory)."""
    profile = dict(
        driver="GTiff", width=side, height=side, count=2, dtype="float32", crs="EPSG:32633",
        transform=from_origin(500000, 5000000, 10, 10), tiled=True, blockxsize=256, blockysize=256,
        BIGTIFF="IF_SAFER",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, side, block):
            for col in range(0, side, block):
                window = Window(col, row, min(block, side - col), min(block, side - row))
                values = rng.normal(-14, 4, (2, window.height, window.width)).astype(np.float32)
                dst.write(values, window=window)
    return path


def throughput(model_path: Path, raster: Path, out: Path, batch: int) -> dict:
    model, metadata = load_model(model_path)
    started = time.perf_counter()
    result = segment_raster(raster, out, (model, metadata), batch_size=batch, device="cpu")
    end_to_end = time.perf_counter() - started
    tile = metadata.tile_size
    x = torch.randn(batch, len(metadata.bands), tile, tile)
    with torch.no_grad():
        model(x)  # warm-up
        started = time.perf_counter()
        for _ in range(0, result.tiles, batch):
            model(x)
        forward = time.perf_counter() - started
    return {
        "tiles": result.tiles,
        "megapixels": result.pixels / 1e6,
        "end_to_end_s": end_to_end,
        "bare_forward_s": forward,
        "throughput_ratio": forward / end_to_end,
        "megapixels_per_s": result.pixels / 1e6 / end_to_end,
    }


def peak_memory(raster: Path, model: Path, out: Path) -> float:
    """Peak RSS (MB) of a fresh process that segments ``raster``."""
    command = [sys.executable, __file__, "--child", str(raster), str(model), str(out)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(output.strip().splitlines()[-1])


def tiny_model(path: Path) -> Path:
    torch.manual_seed(0)
    config = HFDNetConfig(2, 5, widths=(4, 8, 8, 8), align_dim=8)
    classes = [ClassInfo(i, f"class {i}", "#808080") for i in range(5)]
    save_model(
        path,
        HFDNet(config),
        ModelMetadata("student", config, ["VV", "VH"], "sar_db", [-14, -14], [4, 4], classes),
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "resources" / "models" / "student.pt")
    parser.add_argument("--quick", action="store_true", help="4 and 64 MP instead of 25 and 400 MP")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--child", nargs=3, metavar=("RASTER", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        raster, model, out = args.child
        segment_raster(raster, out, model, device="cpu")
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    small_side, large_side = (2000, 8000) if args.quick else (5000, 20000)
    report = {"threads": torch.get_num_threads(), "model": str(args.model)}
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        folder = Path(folder)
        raster = write_raster(folder / "throughput.tif", 1024 if args.quick else 2048)
        report["throughput"] = throughput(args.model, raster, folder / "t_out.tif", args.batch)
        tiny = tiny_model(folder / "tiny.pt")
        memory = {}
        for name, side in (("small", small_side), ("large", large_side)):
            path = write_raster(folder / f"{name}.tif", side)
            memory[name] = {
                "megapixels": side * side / 1e6,
                "peak_rss_mb": peak_memory(path, tiny, folder / "m.tif"),
            }
            path.unlink()
        memory["ratio"] = memory["large"]["peak_rss_mb"] / memory["small"]["peak_rss_mb"]
        report["memory"] = memory
    (args.work / "segment.json").write_text(json.dumps(report, indent=2))
    t, m = report["throughput"], report["memory"]
    print(f"(1) throughput ratio end-to-end / bare forward: {t['throughput_ratio']:.3f} ({t['tiles']} tiles)")
    print(
        f"(2) peak RSS {m['large']['megapixels']:.0f} MP / {m['small']['megapixels']:.0f} MP: "
        f"{m['ratio']:.3f} "
        f"({m['large']['peak_rss_mb']:.0f} MB / {m['small']['peak_rss_mb']:.0f} MB)"
    )
    print(f"(3) {t['megapixels_per_s']:.3f} MP/s end to end ({report['threads']} threads)")


if __name__ == "__main__":
    main()
