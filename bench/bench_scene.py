"""Benchmark of a full Sentinel-1 scene through ``segment_raster`` (a benchmark, not a test).

    PYTHONPATH=/work/ort-site .venv/bin/python bench/bench_scene.py [--quick] [--ablation]
        [--parts compare scene] [--scene-models "land cover" water] [--keep | --write-only]

A Sentinel-1 IW GRD scene is about 25,000 x 17,000 pixels (425 MP). The benchmark writes a raster of that
size (``--quick``: 3,000 x 2,000) by mosaicking real Sentinel-1 dB chips (``mosaic_chips``), then, in one run,
on this machine (see bench/README.md for the figures and how to read them):

1. side by side on the same ``--compare-mp`` crop of the mosaic (default 25 MP, the top-left corner) and the
   same tiles: the bare forward pass (the batches ``segment_raster`` sent, replayed on in-memory real tiles,
   with softmax), torch end to end and ONNX Runtime end to end (when ``onnxruntime`` and ``onnx`` import;
   the same prepared network exported to ONNX, called by ``segment_raster`` through ``OrtNetwork``);
2. the whole scene end to end with torch (``--scene-models``: the land-cover and/or the water model): wall
   time, MP/s, peak RSS and the share of the time spent inside the network's forward;
3. peak memory ratio: peak RSS of the whole scene / peak RSS of the compare crop (target <= 1.2);
4. ``--ablation``: forward-only MP/s of tile pixels for each inference change (as loaded, batch norm folded,
   channels-last, tile 256 or 512, 1 or 2 threads, ONNX Runtime) on real tiles;
5. when CUDA is available, the compare crop and the scene on the GPU too (autocast, large batches).
Every end-to-end run is a fresh child process, so its peak RSS (``VmHWM``) is its own. The 3x3-convolution
throughput of this CPU is measured in the same run, which gives the network's roofline in MP/s.
The rasters live in ``--work`` (runs/bench, git-ignored; the full scene needs 3.4 GB) and are deleted at the
end unless ``--keep``; results are printed and written to ``--work``/scene.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
import torch
from bench_segment import REPO, BatchRecorder, check_disk, rss_mb
from rasterio.transform import from_origin
from rasterio.windows import Window
from torch import nn

from hfd_core.infer import DEFAULT_OVERLAP
from hfd_core.infer.tiled import segment_raster, tiling_defaults
from hfd_core.modelfile import load_model
from hfd_core.models.complexity import count_flops
from hfd_core.models.inference import fold_batch_norm, prepare_for_inference

SCENE = (17000, 25000)  # rows, columns: a Sentinel-1 IW GRD scene at 10 m
QUICK_SCENE = (2000, 3000)
CELL = 512
MODELS = {"land cover": REPO / "resources" / "models" / "student.pt",
          "water": REPO / "resources" / "models" / "water_student.pt"}  # fmt: skip
#: Real Sentinel-1 VV/VH dB chips for the mosaic; the all-NaN Paraguay chip of the sample data is left out.
SHARED_CHIPS = ("Ghana_83483", "Ghana_97059", "India_900498", "Spain_6860600", "Sri-Lanka_534068")
#: Without ../shared/data: the repository's own real Sentinel-1 patch (resources/samples, 256 x 256).
FALLBACK_CHIP = REPO / "resources" / "samples" / "s1_demo_vv_vh_db.tif"


def real_chips(shared: Path) -> list[np.ndarray]:
    """(2, CELL, CELL) float32 dB chips: the Sen1Floods11 chips of ``shared``, else the repository's sample
    (256 x 256) mirrored to CELL x CELL. NaN (nodata) pixels are kept, as in a real scene's borders."""
    paths = [shared / "sen1floods11" / f"{name}_S1Hand.tif" for name in SHARED_CHIPS]
    if not all(path.is_file() for path in paths):
        with rasterio.open(FALLBACK_CHIP) as src:
            chip = src.read().astype(np.float32)
        return [
            np.pad(chip, ((0, 0), (0, CELL - chip.shape[1]), (0, CELL - chip.shape[2])), mode="symmetric")
        ]
    chips = []
    for path in paths:
        with rasterio.open(path) as src:
            chips.append(src.read(window=Window(0, 0, CELL, CELL)).astype(np.float32))
    return chips


def mosaic_chips(path: Path, rows: int, cols: int, chips: list[np.ndarray], seed: int = 0) -> Path:
    """A (rows x cols) two-band dB GeoTIFF (VV, VH; tiled 256, uncompressed, BigTIFF) whose CELL x CELL cells
    are the real ``chips``, each in one of its 8 flips/rotations, drawn with ``seed``; written one row of
    cells at a time (one cell row of the scene in memory). Real backscatter and real class mixes, but no
    structure larger than a chip, and an edge every CELL pixels where chips meet. The top-left corner is the
    same for every size, so a small mosaic is a crop of a large one with the same ``seed``."""
    profile = dict(
        driver="GTiff", width=cols, height=rows, count=2, dtype="float32", crs="EPSG:32633",
        transform=from_origin(500000, 5000000, 10, 10), tiled=True, blockxsize=256, blockysize=256,
        BIGTIFF="YES", nodata=float("nan"),
    )  # fmt: skip
    variants = [np.rot90(c, k, axes=(1, 2)) for c in chips for k in range(4)]
    variants += [v[:, :, ::-1] for v in variants]
    rng = np.random.default_rng(seed)
    columns = -(-cols // CELL)
    choice = rng.integers(len(variants), size=(-(-rows // CELL), -(-SCENE[1] // CELL)))[:, :columns]
    with rasterio.open(path, "w", **profile) as dst:
        dst.descriptions = ("VV", "VH")
        for cell_row, picks in enumerate(choice):
            band = np.concatenate([variants[i] for i in picks], axis=2)[:, :, :cols]
            row = cell_row * CELL
            height = min(CELL, rows - row)
            dst.write(np.ascontiguousarray(band[:, :height]), window=Window(0, row, cols, height))
    return path


class OrtNetwork(nn.Module):
    """The network exported to ONNX (batch axis dynamic, tile size fixed) and run by ONNX Runtime on CPU;
    called by ``segment_raster`` like the torch network (tensor in, logits out)."""

    def __init__(self, network: nn.Module, in_channels: int, tile: int, threads: int | None = None):
        super().__init__()
        import onnxruntime

        network = fold_batch_norm(network.eval())  # ORT folds too; the same graph as torch runs
        buffer = io.BytesIO()
        example = torch.zeros(1, in_channels, tile, tile)
        with warnings.catch_warnings():  # the tracer's notes on the fixed tile size: intended here
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, example, buffer, dynamo=False, opset_version=17, input_names=["x"],
                output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            )  # fmt: skip
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(
            buffer.getvalue(), options, providers=["CPUExecutionProvider"]
        )

    def __deepcopy__(self, memo: dict) -> OrtNetwork:
        return self  # segment_raster copies the network it is given; a session is not copied, and not changed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {"x": x.contiguous().numpy()})
        return torch.from_numpy(logits)


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def child(spec: dict) -> dict:
    """Runs in a fresh process: one ``segment_raster`` run of ``spec``; its time, forward time, the batch
    sizes sent to the network, RSS before and peak RSS after."""
    network, metadata = load_model(spec["model"])
    tile, batch = tiling_defaults(metadata, torch.device(spec["device"]))
    overlap = DEFAULT_OVERLAP
    if spec["backend"] == "onnx":
        network = OrtNetwork(network, metadata.config.in_channels, tile)
    recorder = BatchRecorder(network)
    before = rss_mb("VmRSS")
    result = segment_raster(
        spec["raster"], spec["out"], (recorder, metadata), device=spec["device"],
        tile_size=spec.get("tile"), overlap=spec.get("overlap", overlap),
    )  # fmt: skip
    return {
        "seconds": result.seconds, "megapixels": result.pixels / 1e6, "mp_per_s": result.megapixels_per_s,
        "forward_s": recorder.record.seconds, "forward_share": recorder.record.seconds / result.seconds,
        "tiles": result.tiles, "tile": spec.get("tile") or tile, "batch": batch,
        "batch_sizes": recorder.record.batch_sizes, "baseline_mb": before, "peak_mb": rss_mb("VmHWM"),
    }  # fmt: skip


def run_child(spec: dict) -> dict:
    started = time.perf_counter()
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    report = json.loads(output.strip().splitlines()[-1])
    print(f"  {spec['name']}: {summary(report)}", flush=True)
    return {**report, "wall_s": time.perf_counter() - started, "spec": spec}


def summary(run: dict) -> str:
    return (
        f"{run['megapixels']:.1f} MP in {run['seconds']:.1f} s = {run['mp_per_s']:.3f} MP/s, forward "
        f"{run['forward_share']:.3f} of it, {run['tiles']} tiles of {run['tile']}, peak RSS "
        f"{run['peak_mb']:.0f} MB"
    )


def real_tiles(raster: Path, model: Path, count: int, tile: int) -> torch.Tensor:
    """``count`` normalised (C, tile, tile) tiles of the raster, as segment_raster feeds a model of dB bands
    (the land-cover student), from a grid of half-tile steps (repeated when the raster holds fewer)."""
    _, metadata = load_model(model)
    mean = np.float32(metadata.mean)[:, None, None]
    std = np.float32(metadata.std)[:, None, None]
    with rasterio.open(raster) as src:
        step = tile // 2
        corners = [
            (row, col)
            for row in range(0, src.height - tile + 1, step)
            for col in range(0, src.width - tile + 1, step)
        ]
        tiles = []
        for row, col in (corners[i % len(corners)] for i in range(count)):
            data = src.read(window=Window(col, row, tile, tile)).astype(np.float32)
            tiles.append(np.nan_to_num((data - mean) / std))
    return torch.from_numpy(np.stack(tiles))


def bare_forward(
    network: nn.Module, tiles: torch.Tensor, batch_sizes: list[int], channels_last: bool
) -> float:
    """Seconds for the forward (with softmax) of ``batch_sizes`` batches cut from ``tiles``, after warm-up."""
    if channels_last:
        tiles = tiles.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        network(tiles[: batch_sizes[0]])
        started = time.perf_counter()
        for size in batch_sizes:
            torch.softmax(network(tiles[:size]), dim=1)
    return time.perf_counter() - started


def ablation(raster: Path, model: Path, megapixels: float) -> dict:
    """Forward-only MP/s (of tile pixels) of each inference change on real tiles, ``megapixels`` each."""
    report = {}
    threads = torch.get_num_threads()
    for tile, batch in ((256, 8), (512, 2)):
        tiles = real_tiles(raster, model, batch, tile)
        batches = [batch] * max(1, round(megapixels * 1e6 / (batch * tile * tile)))
        pixels = len(batches) * batch * tile * tile / 1e6

        def measure(name: str, network: nn.Module, channels_last: bool = False) -> None:
            key = f"{name}, tile {tile} x{batch}"  # noqa: B023 (called at once, in this iteration)
            report[key] = pixels / bare_forward(network, tiles, batches, channels_last)  # noqa: B023
            print(f"  {key}: {report[key]:.3f} MP/s", flush=True)

        measure("as loaded (NCHW)", load_model(model)[0])
        measure("batch norm folded", fold_batch_norm(load_model(model)[0]))
        prepared = prepare_for_inference(load_model(model)[0], torch.device("cpu"))
        measure("folded + channels-last", prepared, channels_last=True)
        torch.set_num_threads(1)
        measure("folded + channels-last, 1 thread", prepared, channels_last=True)
        torch.set_num_threads(threads)
        if onnx_available():
            network, metadata = load_model(model)
            measure("ONNX Runtime", OrtNetwork(network, metadata.config.in_channels, tile))
    return report


def conv_gflops() -> float:
    """Best GFLOP/s of a 3x3 convolution (96 -> 96 channels, 2 x 128 x 128, channels-last) on this CPU."""
    conv = nn.Conv2d(96, 96, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(2, 96, 128, 128).contiguous(memory_format=torch.channels_last)
    flops = 2 * x.numel() * 96 * 9
    with torch.no_grad():
        conv(x)
        best = min(_timed(conv, x) for _ in range(20))
    return flops / best / 1e9


def _timed(conv: nn.Module, x: torch.Tensor) -> float:
    started = time.perf_counter()
    conv(x)
    return time.perf_counter() - started


def roofline(model: Path, tile: int, overlap: int, gflops: float) -> float:
    """MP/s of the whole raster if the network's convolutions ran at ``gflops`` and nothing else cost time:
    tiles of ``tile`` on a stride of ``tile - overlap`` compute each pixel (tile / stride)^2 times."""
    network, metadata = load_model(model)
    per_pixel = count_flops(network, metadata.config.in_channels, tile) / tile**2
    return gflops * 1e9 / per_pixel / (tile / (tile - overlap)) ** 2 / 1e6


def side_by_side(report: dict, crop: Path, common: dict, tile: int, overlap: int, ablation_mp: float) -> None:
    """Part 1 (and 4 when ``report`` has "ablation"): bare forward, torch and ONNX Runtime end to end, and the
    water model end to end."""
    model, cpu = Path(common["model"]), torch.device("cpu")
    torch_run = report["torch"]
    tiles = real_tiles(crop, model, max(torch_run["batch_sizes"]), tile)
    prepared = prepare_for_inference(load_model(model)[0], cpu)
    bare = bare_forward(prepared, tiles, torch_run["batch_sizes"], channels_last=True)
    report["bare_forward_s"] = bare
    print(f"  bare forward (torch): {bare:.1f} s, throughput ratio {bare / torch_run['seconds']:.3f}")
    if onnx_available():
        report["onnx"] = run_child({**common, "name": "ONNX Runtime end to end", "backend": "onnx"})
        network, metadata = load_model(model)
        ort = OrtNetwork(network, metadata.config.in_channels, tile)
        report["onnx_bare_forward_s"] = bare_forward(
            ort, tiles, torch_run["batch_sizes"], channels_last=False
        )
        print(f"  bare forward (ONNX Runtime): {report['onnx_bare_forward_s']:.1f} s")
    else:
        print("  ONNX Runtime: not importable (onnxruntime and onnx, see bench/README.md), skipped")
    gflops = conv_gflops()
    report["conv_gflops"], report["roofline_mp_per_s"] = gflops, roofline(model, tile, overlap, gflops)
    print(f"  3x3 convolutions: {gflops:.1f} GFLOP/s -> roofline {report['roofline_mp_per_s']:.3f} MP/s")
    water = {**common, "model": str(MODELS["water"]), "backend": "torch"}
    report["water"] = run_child({**water, "name": "water model, torch end to end"})
    if torch.cuda.is_available():
        report["cuda"] = run_child(
            {**common, "name": "CUDA end to end", "backend": "torch", "device": "cuda"}
        )
    if "ablation" in report:
        print("(4) forward only, MP/s of tile pixels")
        report["ablation"] = ablation(crop, model, ablation_mp)


def whole_scene(report: dict, scene: Path, common: dict, models: list[str]) -> None:
    """Parts 2 and 3: the scene end to end with each of ``models``; peak RSS ratio scene / crop."""
    rows, cols = report["scene"]
    print(f"(2) the whole {rows} x {cols} scene ({rows * cols / 1e6:.0f} MP)")
    for name in models:
        spec = {**common, "raster": str(scene), "model": str(MODELS[name]), "backend": "torch"}
        report[f"scene {name}"] = run_child({**spec, "name": f"{name}, torch"})
        if torch.cuda.is_available():
            report[f"scene {name} cuda"] = run_child({**spec, "name": f"{name}, CUDA", "device": "cuda"})
    if "land cover" in models:
        report["peak_ratio"] = report["scene land cover"]["peak_mb"] / report["torch"]["peak_mb"]
        print(f"(3) peak RSS scene / crop, land cover: {report['peak_ratio']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_SCENE} scene: a smoke run")
    parser.add_argument("--size", type=int, nargs=2, metavar=("ROWS", "COLS"), help="scene size instead")
    parser.add_argument("--compare-mp", type=float, default=25.0, help="size of the side-by-side crop")
    parser.add_argument(
        "--parts", nargs="+", choices=("compare", "scene"), default=["compare", "scene"],
        help="compare: parts 1 and 4 on the crop; scene: parts 2 and 3 (the crop's torch run is in both)",
    )  # fmt: skip
    parser.add_argument("--scene-models", nargs="+", choices=sorted(MODELS), default=["land cover"])
    parser.add_argument("--ablation", action="store_true", help="forward-only MP/s of each change (part 4)")
    parser.add_argument("--ablation-mp", type=float, default=1.0, help="tile megapixels per change")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("--keep", action="store_true", help="keep the rasters (and reuse them when present)")
    parser.add_argument("--write-only", action="store_true", help="write the rasters, keep them, stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    rows, cols = args.size or (QUICK_SCENE if args.quick else SCENE)
    side = min(int((args.compare_mp * 1e6) ** 0.5), rows, cols)
    args.work.mkdir(parents=True, exist_ok=True)
    check_disk(args.work, rows * cols)
    keep = args.keep or args.write_only
    chips = real_chips(args.shared)
    paths = {"crop": args.work / f"crop_{side}.tif", "scene": args.work / f"scene_{rows}x{cols}.tif"}
    for name, (height, width) in (("crop", (side, side)), ("scene", (rows, cols))):
        if (name == "crop" or "scene" in args.parts) and not (keep and paths[name].is_file()):
            mosaic_chips(paths[name], height, width, chips)
    if args.write_only:
        return
    model = MODELS["land cover"]
    (tile, batch), overlap = tiling_defaults(load_model(model)[1], torch.device("cpu")), DEFAULT_OVERLAP
    report = {
        "scene": [rows, cols], "compare": [side, side], "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(), "tiling": [tile, overlap, batch],
        "chips": "Sen1Floods11 S1Hand x5" if len(chips) > 1 else FALLBACK_CHIP.name,
    }  # fmt: skip
    if args.ablation:
        report["ablation"] = {}
    print(f"(1) a {side} x {side} mosaic crop ({report['chips']}), tile {tile}/{overlap}")
    common = {"model": str(model), "raster": str(paths["crop"]), "out": str(args.work / "out.tif")}
    common["device"] = "cpu"
    report["torch"] = run_child({**common, "name": "torch end to end", "backend": "torch"})
    if "compare" in args.parts:
        side_by_side(report, paths["crop"], common, tile, overlap, args.ablation_mp)
    if "scene" in args.parts:
        whole_scene(report, paths["scene"], common, args.scene_models)
    for path in [] if keep else paths.values():
        path.unlink(missing_ok=True)
    for leftover in (args.work / "out.tif", args.work / "out.qml"):
        leftover.unlink(missing_ok=True)
    report["load_average_at_end"] = os.getloadavg()
    (args.work / f"scene_{'_'.join(args.parts)}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
