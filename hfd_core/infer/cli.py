"""``python -m hfd_core segment`` and ``python -m hfd_core preview``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hfd_core.cli import number
from hfd_core.infer import BATCH_SIZE_RANGE, DEFAULT_OVERLAP, INPUT_SCALES, OVERLAP_RANGE, TILE_SIZE_RANGE
from hfd_core.modelfile import BUNDLED_NAMES, bundled_model_path


def _bands(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bands must be comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    segment = subparsers.add_parser("segment", help="segment a SAR raster with a model file")
    segment.add_argument("input", type=Path, help="input raster (e.g. Sentinel-1 VV, VH in dB)")
    segment.add_argument("output", type=Path, help="output GeoTIFF of class ids (.qml style beside)")
    segment.add_argument("--model", type=Path, help="model file (.pt; default: the bundled model, --bundled)")
    segment.add_argument(
        "--bundled",
        choices=sorted(BUNDLED_NAMES),
        default="land-cover",
        help="bundled model used without --model (as hfd:segment's Bundled model)",
    )
    segment.add_argument("--bands", type=_bands, help="1-based input bands in the model's order, e.g. 1,2")
    segment.add_argument(
        "--tile-size",
        type=number(int, *TILE_SIZE_RANGE),
        help="tile size in pixels (0, default: automatic, 512 on CPU, the model's on a GPU)",
    )
    segment.add_argument(
        "--overlap",
        type=number(int, *OVERLAP_RANGE),
        default=DEFAULT_OVERLAP,
        help="overlap between tiles in pixels",
    )
    segment.add_argument(
        "--batch-size", type=number(int, *BATCH_SIZE_RANGE), help="tiles per batch (0, default: by device)"
    )
    segment.add_argument("--device", default="auto", help="auto, cpu, cuda")
    segment.add_argument("--input-scale", default="auto", choices=INPUT_SCALES)
    segment.add_argument("--confidence", type=Path, help="also write the max class probability here")
    segment.set_defaults(func=run_segment)

    preview = subparsers.add_parser("preview", help="PNG preview of a segmentation (and its SAR input)")
    preview.add_argument("segmentation", type=Path)
    preview.add_argument("png", type=Path)
    preview.add_argument("--input", type=Path, help="the SAR raster, shown beside the classes")
    preview.set_defaults(func=run_preview)


def run_segment(args: argparse.Namespace) -> int:
    from hfd_core.errors import InputError
    from hfd_core.infer.tiled import segment_raster
    from hfd_core.infer.timing import TimeLeft

    model = args.model
    if model is None:  # as hfd:segment without MODEL
        model = bundled_model_path(BUNDLED_NAMES[args.bundled])
        if not model.is_file():
            raise InputError(
                f"the bundled {args.bundled} model {model} is missing: give --model "
                "(`make train-bundled` rebuilds it)"
            )

    time_left = TimeLeft()

    def progress(percent: float) -> None:
        filled = int(percent / 2.5)
        bar = f"[{'#' * filled}{'.' * (40 - filled)}] {percent:5.1f}% {time_left(percent)}"
        print(f"\r{bar:<80}", end="", file=sys.stderr, flush=True)

    try:
        result = segment_raster(
            args.input,
            args.output,
            model,
            bands=args.bands,
            tile_size=args.tile_size or None,
            overlap=args.overlap,
            batch_size=args.batch_size or None,
            device=args.device,
            input_scale=args.input_scale,
            confidence_path=args.confidence,
            progress=progress,
        )
    finally:
        print(file=sys.stderr)  # ends the progress line
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.summary())
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from hfd_core.files import check_outputs
    from hfd_core.infer.preview import write_preview_png

    check_outputs({"the PNG": args.png}, {"the segmentation": args.segmentation, "--input": args.input})
    write_preview_png(args.segmentation, args.png, args.input)
    print(args.png)
    return 0
