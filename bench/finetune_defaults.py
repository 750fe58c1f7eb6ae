"""What label-free fine-tuning with the defaults buys on a real Sentinel-1 + Sentinel-2 chip with hand labels.

    .venv/bin/python bench/finetune_defaults.py                     # India_900498 of ../shared/data, defaults
    .venv/bin/python bench/finetune_defaults.py --model tuned.pt    # score a model fine-tuned elsewhere
    .venv/bin/python bench/finetune_defaults.py --set lr=3e-4 --set epochs=5   # other settings
    .venv/bin/python bench/finetune_defaults.py --student S.pt --teacher T.pt  # models new to the chip
    .venv/bin/python bench/finetune_defaults.py --cloudy           # a third of the S2 under real cloud

Fine-tunes the bundled student on the chip's S1Hand + S2Hand without labels (the default targets: the
spectral rules' map of the Sentinel-2 where they claim a pixel, none under cloud or snow, the teacher's
elsewhere; ``--set targets='"teacher"'``: the teacher's everywhere), then scores water IoU against LabelHand
on the held-out blocks (pixels the run never trained on, read from the model file) and on the whole chip (what
a user who segments the chip with the new model sees): the bundled student before, after, the bundled teacher
on the Sentinel-2, the spectral rules' water on it (when the teacher reads the rules' bands), and Otsu's
threshold on VH (computed over the whole chip, unsupervised). Each model predicts the whole chip as
``evaluate`` does. Prints a markdown table and a JSON line.

``--cloudy`` puts real cloud on the chip's Sentinel-2 (``cloudy_chip``): floods are mapped under cloud, and
an EO image of the area will often have some.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

from hfd_core.data import Scene
from hfd_core.data.raster import read_float
from hfd_core.data.speckle import mean_filter
from hfd_core.data.spectral_labels import RULE_BANDS, WATER, product_level, spectral_labels
from hfd_core.modelfile import bundled_model_path, load_model, read_metadata
from hfd_core.train.evaluation import predict_scene
from hfd_core.train.finetune import band_indices, finetune

REPO = Path(__file__).resolve().parents[1]
CHIP = REPO.parent / "shared" / "data" / "sen1floods11" / "India_900498"
#: Sen1Floods11 LabelHand: 1 water, 0 not water, -1 nodata; the bundled models' class 0 is water.
WATER_LABEL, WATER_CLASS = 1, 0


def water_iou(predicted_water: np.ndarray, label: np.ndarray, mask: np.ndarray) -> float:
    """IoU of water over ``mask`` pixels that have a label (0 or 1)."""
    keep = mask & ((label == 0) | (label == WATER_LABEL))
    truth, predicted = label[keep] == WATER_LABEL, predicted_water[keep]
    return float((truth & predicted).sum() / max((truth | predicted).sum(), 1))


#: A real cloud: SEN12MS-CR patch ROIs1970_fall_139_p839 (Sentinel-2 L1C, 256 x 256), cloudy and cloud-free.
CLOUD_PATCH = REPO.parent / "shared" / "data" / "sen12ms_cr" / "glfcr"
CLOUD_NAME = "ROIs1970_fall_139_p839.tif"
#: Cloud: where the cloudy patch's B02 exceeds the cloud-free one's by this much (reflectance x 10000).
CLOUD_MIN_B02 = 1000


def cloudy_chip(chip: Path, folder: Path) -> Path:
    """A copy of ``chip`` (prefix) in ``folder`` whose S2Hand has a real cloud added: the brightening of the
    cloud patch over its cloud-free date, in all 13 bands, where it is cloud (``CLOUD_MIN_B02``), enlarged x 2
    to the chip's 512 x 512 pixels (35 % of the chip, 45 % of India_900498's water). S1Hand and LabelHand are
    linked unchanged."""
    cloudy, clear = (read_float(CLOUD_PATCH / sky / CLOUD_NAME) for sky in ("s2_cloudy", "s2_cloudfree"))
    brightening = np.maximum(cloudy - clear, 0)
    brightening[:, cloudy[1] - clear[1] <= CLOUD_MIN_B02] = 0
    brightening = brightening.repeat(2, axis=1).repeat(2, axis=2)
    copy = folder / chip.name
    with rasterio.open(f"{chip}_S2Hand.tif") as src:
        profile, s2 = src.profile, src.read().astype(np.float32)
    with rasterio.open(f"{copy}_S2Hand.tif", "w", **profile) as dst:
        dst.write((s2 + brightening[:, : s2.shape[1], : s2.shape[2]]).astype(profile["dtype"]))
    for kind in ("S1Hand", "LabelHand"):
        Path(f"{copy}_{kind}.tif").symlink_to(Path(f"{chip}_{kind}.tif").resolve())
    return copy


#: Thresholds tried for the best single-band threshold (dB, 0.25 dB apart).
ORACLE_THRESHOLDS = np.arange(-30.0, -5.0, 0.25)


def best_threshold_iou(sar: np.ndarray, label: np.ndarray, mask: np.ndarray) -> float:
    """The highest water IoU on ``mask`` of "VV or VH, 7 x 7 mean-filtered or not, below t", t chosen with the
    labels themselves: what one band's threshold can reach at best, a reference for the SAR-only student."""
    bands = [band for pair in ((b, mean_filter(b)) for b in sar) for band in pair]
    return max(water_iou(band < t, label, mask) for band in bands for t in ORACLE_THRESHOLDS)


#: Scores of ``chip_scores``, in the table's column order.
SCORES = ("student_before", "student_after", "teacher", "rules", "otsu_vh", "best_threshold")


def chip_scores(
    chip: Path, tuned: Path, student_path: Path | None = None, teacher_path: Path | None = None
) -> dict:
    """Water IoU of ``SCORES``: before (``student_path``, default the bundled student), after, teacher
    (default the bundled one), the spectral rules (NaN for a teacher with other bands), Otsu on VH, the best
    threshold chosen with the labels (``best_threshold_iou``). ``held_out`` holds them on the held-out blocks
    recorded in ``tuned`` (pixels the run never trained on); ``whole_chip`` on every labelled pixel, as a user
    who segments the chip with the new model sees them (most of those pixels trained the model)."""
    from skimage.filters import threshold_otsu

    student_path = student_path or bundled_model_path("student")
    teacher_path = teacher_path or bundled_model_path("teacher")
    sar_path, eo_path = Path(f"{chip}_S1Hand.tif"), Path(f"{chip}_S2Hand.tif")
    student = read_metadata(student_path)
    teacher = read_metadata(teacher_path)
    sar = read_float(sar_path, band_indices(sar_path, student.bands))
    eo = read_float(eo_path, band_indices(eo_path, teacher.bands))
    label = read_float(Path(f"{chip}_LabelHand.tif"), [1])[0]
    scene = Scene(chip.name, chip.name, sar, eo, None, list(student.bands), list(teacher.bands))
    held_out = np.zeros(label.shape, bool)
    for row, col, size in read_metadata(tuned).training["fine_tuning"][-1]["held_out_blocks"]:
        held_out[row : row + size, col : col + size] = True

    def model_water(path: Path) -> np.ndarray:
        model, metadata = load_model(path)
        return predict_scene(model, metadata, scene, torch.device("cpu")) == WATER_CLASS

    vh = sar[student.bands.index("VH")]
    finite = np.isfinite(vh)
    water = {
        "student_before": model_water(student_path),
        "student_after": model_water(tuned),
        "teacher": model_water(teacher_path),
        "otsu_vh": finite & (vh < threshold_otsu(vh[finite])),
    }
    if list(teacher.bands) == list(RULE_BANDS):
        water["rules"] = spectral_labels(eo, product_level(eo)) == WATER

    def scores(mask: np.ndarray) -> dict:
        found = {name: water_iou(water[name], label, mask) for name in water}
        return {"rules": float("nan"), **found, "best_threshold": best_threshold_iou(sar, label, mask)}

    return {
        "held_out_pixels": int(held_out.sum()),
        "held_out": scores(held_out),
        "whole_chip": scores(np.ones(label.shape, bool)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chip", type=Path, default=CHIP, help="prefix of *_S1Hand/_S2Hand/_LabelHand.tif")
    parser.add_argument("--model", type=Path, help="score this fine-tuned model instead of fine-tuning")
    parser.add_argument("--set", action="append", default=[], help="finetune keyword=JSON value")
    parser.add_argument("--student", type=Path, help="base student (default: the bundled one)")
    parser.add_argument("--teacher", type=Path, help="teacher (default: the bundled one)")
    parser.add_argument("--cloudy", action="store_true", help="add a real cloud to the chip's Sentinel-2")
    args = parser.parse_args()
    student, teacher = (
        args.student or bundled_model_path("student"),
        args.teacher or bundled_model_path("teacher"),
    )
    settings = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    seconds = None
    with tempfile.TemporaryDirectory(prefix="finetune-defaults-") as folder:
        chip = cloudy_chip(args.chip, Path(folder)) if args.cloudy else args.chip
        tuned = args.model
        if tuned is None:
            tuned, start = Path(folder) / "tuned.pt", time.perf_counter()
            finetune(
                f"{chip}_S1Hand.tif", f"{chip}_S2Hand.tif", tuned, student, teacher, device="cpu",
                **settings,
            )  # fmt: skip
            seconds = round(time.perf_counter() - start, 1)
        scores = chip_scores(chip, tuned, student, teacher)
    print(
        f"| {args.chip.name}, water IoU | student before | student after | teacher (S2) | rules (S2) "
        "| Otsu on VH | best threshold (labels) |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = {"held_out": f"{scores['held_out_pixels']} held-out pixels", "whole_chip": "whole chip"}
    for key, title in rows.items():
        print(f"| {title} | " + " | ".join(f"{scores[key][name]:.3f}" for name in SCORES) + " |")
    threads = torch.get_num_threads()
    print(
        json.dumps(
            {"settings": settings, "cloudy": args.cloudy, "seconds": seconds, "threads": threads, **scores}
        )
    )


if __name__ == "__main__":
    main()
