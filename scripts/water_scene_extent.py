"""Scene extent and water share: the water model against the classical thresholds on windows of the dB chips.

A per-scene threshold maps a pixel according to the scene around it, and so does the water model, which reads
the scene's statistics (``scene_context``). How much does the map depend on what the scene holds? Each dB chip
is cut into windows of ``WINDOW_SIZES`` pixels (half overlapping), and each window, as well as the whole chip,
is segmented as a scene of its own: by the water model's fold that left the chip's location out (through
``segment_raster``, as ``hfd:segment`` does) and by the thresholds on the same pixels. Windows are binned by
their share of water in the hand labels: pooled water IoU per bin, and on windows without water the share of
pixels called water and how many windows exceed the card's 1 % limit. The section goes into the water model's
cards between ``<!-- scene-extent: generated -->`` markers (``make water-scene-extent``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from water_model_card import (
    CARD_SCORES,
    DRY_LIMIT,
    Chip,
    leave_out_folds,
    pooled_iou,
    read_chips,
    score_chips,
    section_arguments,
    write_sections,
)

WINDOW_SIZES = (256, 128)
#: Windows with less than this share of valid pixels are left out.
MIN_VALID = 0.5
#: Water share bins of the windows with water: (low, high], as the card names them.
SHARE_BINS = ((0.0, 0.1, "up to 10 %"), (0.1, 0.4, "10-40 %"), (0.4, 0.7, "40-70 %"), (0.7, 1.0, "over 70 %"))
METHODS = ("Otsu (VH)", "filtered bounded Otsu (VH)", "model")
START, END = "<!-- scene-extent: generated -->", "<!-- /scene-extent -->"


def window_chips(chip: Chip, workdir: Path) -> list[Chip]:
    """The whole chip and its windows of ``WINDOW_SIZES`` px at half-window steps, each as a GeoTIFF."""
    with rasterio.open(chip.path) as src:
        profile, data = src.profile, src.read().astype(np.float32)
    height, width = data.shape[1:]
    boxes = [(0, 0, height, width)]
    for size in WINDOW_SIZES:
        if min(height, width) >= 3 * size // 2:
            tops, lefts = range(0, height - size + 1, size // 2), range(0, width - size + 1, size // 2)
            boxes += [(top, left, size, size) for top in tops for left in lefts]
    windows = []
    for index, (row, col, rows, cols) in enumerate(boxes):
        sar = data[:, row : row + rows, col : col + cols]
        if np.isfinite(sar).all(axis=0).mean() < MIN_VALID:
            continue
        path = workdir / f"{chip.name}_window{index}.tif"
        transform = rasterio.windows.transform(Window(col, row, cols, rows), profile["transform"])
        extent = {"height": rows, "width": cols, "count": 2, "dtype": "float32", "transform": transform}
        with rasterio.open(path, "w", **(profile | extent)) as dst:
            dst.write(sar)
        label = chip.label[row : row + rows, col : col + cols]
        windows.append(Chip(f"{chip.name}_window{index}", chip.location, path, sar[0], sar[1], label))
    return windows


def share_of_water(counts: dict) -> float:
    return counts["truth"] / max(counts["pixels"], 1)


def section(windows: list[Chip], results: dict, variant: str) -> str:
    """The cards' section: pooled water IoU by water share, and false water on the windows without water."""
    lines = [
        START,
        "## Scene extent: windows of the dB chips as scenes of their own (`make water-scene-extent`)",
        "",
        f"Each dB chip whole and cut into windows of {' and '.join(map(str, WINDOW_SIZES))} px (half "
        f"overlapping, at least {100 * MIN_VALID:.0f} % valid), each segmented as a scene of its own by the "
        f"fold of `leave-out/{variant}` that left the chip's location out, and thresholded on the same "
        "pixels (`scripts/water_scene_extent.py`). Pooled water IoU by the window's share of water; on "
        "windows without water, the share of pixels called water and the windows above "
        f"{100 * DRY_LIMIT:.0f} %.",
        "",
        "| windows | count | " + " | ".join(METHODS) + " |",
        "|---|---|" + "---|" * len(METHODS),
    ]
    model = results["model"]
    wet = {w.name: share_of_water(model[w.name]) for w in windows if model[w.name]["truth"]}
    for low, high, name in SHARE_BINS:
        chosen = [w for w, share in wet.items() if low < share <= high]
        if chosen:
            scores = [f"{pooled_iou([results[m][w] for w in chosen]):.3f}" for m in METHODS]
            lines.append(f"| water {name} | {len(chosen)} | " + " | ".join(scores) + " |")
    if wet:
        scores = [f"**{pooled_iou([results[m][w] for w in wet]):.3f}**" for m in METHODS]
        lines.append(f"| all with water (pooled) | {len(wet)} | " + " | ".join(scores) + " |")
    dry = [w for w in windows if w.name not in wet]
    chips = sorted({w.name.rsplit("_window", 1)[0] for w in dry})
    for chip, chosen in [("all", dry), *((c, [w for w in dry if w.name.startswith(f"{c}_")]) for c in chips)]:
        cells = []
        for method in METHODS:
            counts = [results[method][w.name] for w in chosen]
            called = sum(c["water"] for c in counts) / max(sum(c["pixels"] for c in counts), 1)
            above = sum(c["water"] > DRY_LIMIT * c["pixels"] for c in counts)
            cells.append(f"{100 * called:.2f} % ({above} above)")
        where = "" if chip == "all" else f", of {chip}"
        lines.append(f"| without water{where}: water called | {len(chosen)} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, END])


def main() -> None:
    parser = section_arguments(__doc__.splitlines()[0])
    parser.add_argument(
        "--variant", help="the leave-out folds under <run>/leave-out/ (default: the card's chosen variant)"
    )
    args = parser.parse_args()
    variant = args.variant or json.loads((args.run / CARD_SCORES).read_text())["chosen"]
    folds = leave_out_folds(args.run / "leave-out" / variant)
    with tempfile.TemporaryDirectory() as workdir:
        chips = [c for c in read_chips(args.samples, Path(workdir)) if c.location in folds]
        windows = [w for chip in chips for w in window_chips(chip, Path(workdir))]
        results = score_chips(windows, {}, {"model": folds}, Path(workdir))
    text = section(windows, results, variant)
    write_sections(args.cards, text)


if __name__ == "__main__":
    main()
