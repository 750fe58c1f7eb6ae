"""Publish the bundled model: copy teacher and student from a `make train-bundled` run into resources/models/
and generate MODEL_CARD.md from the run's model files and held-out evaluations (nothing typed by hand).

    python scripts/bundled_model_card.py --run runs/bundled --models resources/models --command "make ..."
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import rasterio

from hfd_core import IGNORE_INDEX
from hfd_core.data.bundled import BUNDLED_VALIDATION_GROUPS
from hfd_core.errors import InputError
from hfd_core.infer.tiled import segment_raster
from hfd_core.modelfile import load_model, save_model
from hfd_core.train.datasets import load_scenes

RUNS = (
    ("teacher", "Teacher (EO: Sentinel-2)", "EO"),
    ("student", "HFD student (SAR, distilled)", "SAR"),
    ("student_sar_only", "SAR-only student (no teacher)", "SAR"),
)
#: Tile size the published models advertise for inference (training used smaller random windows).
INFERENCE_TILE_SIZE = 256

TEMPLATE = Path(__file__).with_name("bundled_model_card.md")
#: Tilings compared with one tile over the whole chip (tile size, overlap).
TILINGS = ((128, 32), (256, 64), (256, 128))


def _class_rows(metadata) -> str:
    return "\n".join(f"| {c.id} | {c.name} | `{c.color}` |" for c in metadata.classes)


def _score_table(reports: dict[str, dict], class_names: list[str]) -> str:
    header = "| model | input | mIoU | OA | kappa | " + " | ".join(f"IoU {n}" for n in class_names) + " |"
    lines = [header, "|" + "---|" * (5 + len(class_names))]
    for run, title, modality in RUNS:
        report = reports[run]
        ious = [report["per_class_iou"][n] for n in class_names]
        cells = " | ".join("n/a" if iou != iou else f"{iou:.3f}" for iou in ious)  # NaN: class absent
        lines.append(
            f"| {title} | {modality} | {report['miou']:.3f} | {report['oa']:.3f} | "
            f"{report['kappa']:.3f} | {cells} |"
        )
    return "\n".join(lines)


def _verdict(reports: dict[str, dict]) -> str:
    distilled, baseline = reports["student"]["miou"], reports["student_sar_only"]["miou"]
    gap = distilled - baseline
    if gap > 0:
        return (
            f"On the held-out locations the distilled student scores {distilled:.3f} mIoU against "
            f"{baseline:.3f} for the SAR-only student trained with the same budget and seed (+{gap:.3f})."
        )
    return (
        f"On the held-out locations the distilled student does **not** beat the SAR-only student: "
        f"{distilled:.3f} vs {baseline:.3f} mIoU ({gap:+.3f}), same budget and seed. One seed and seven test "
        "chips from three locations cannot say how large the difference really is; "
        "docs/experiments/ombria.md compares the two on a larger set with three seeds."
    )


def _training_rows(metadata) -> str:
    config = metadata.training.get("config", {})
    keys = (
        "epochs",
        "batch_size",
        "lr",
        "tile_size",
        "samples_per_epoch",
        "augment",
        "distill_weight",
        "consistency_weight",
        "seed",
    )
    rows = [f"| {k} | {config[k]} |" for k in keys if k in config]
    rows.append(f"| best epoch (validation mIoU) | {metadata.training.get('best_epoch')} |")
    rows.append(
        f"| training scenes / locations | {metadata.training.get('train_scenes')} / "
        f"{len(metadata.training.get('train_groups', []))} |"
    )
    rows.append(
        f"| validation locations (early stopping) | {', '.join(metadata.training.get('val_groups', []))} |"
    )
    return "\n".join(rows)


def _left_out(metadata, samples: Path | None) -> str:
    """The training split's locations that neither trained the model nor chose its epoch (--leave-out)."""
    if samples is None:
        return ""
    used = set(metadata.training.get("train_groups", [])) | set(metadata.training.get("val_groups", []))
    left = sorted({scene.group for scene in load_scenes("bundled", samples, "train")} - used)
    if not left:
        return "No location was left out."
    sentence = f"Left out of training and early stopping (`BUNDLED_LEAVE_OUT`): {', '.join(left)}."
    if "sen1floods11-India" in left:
        sentence += (
            " Sen1Floods11 India_900498 is the samples' only Sentinel-1 + Sentinel-2 chip with hand-labelled"
            " water; out of the models, it measures what `hfd:finetune` buys on a chip they never saw"
            ' (README, "Fine-tuning defaults").'
        )
    return sentence


def tile_agreement(student: Path, chips: list[Path]) -> str:
    """Share of pixels where small overlapping tiles give the class of one tile over the whole chip."""
    if not chips:
        return "(not measured: no Sen1Floods11 Sentinel-1 chips found)"
    rows = ["| chip | " + " | ".join(f"tiles {t}, overlap {o}" for t, o in TILINGS) + " |"]
    rows.append("|---|" + "---|" * len(TILINGS))
    with tempfile.TemporaryDirectory() as folder:
        for chip in chips:
            maps = []
            for tile, overlap in ((4096, 0), *TILINGS):
                out = Path(folder) / f"{tile}_{overlap}.tif"
                try:
                    segment_raster(chip, out, student, tile_size=tile, overlap=overlap, device="cpu")
                except InputError:  # the all-NaN chip: nothing to compare
                    break
                with rasterio.open(out) as src:
                    maps.append(src.read(1))
            if not maps:
                continue
            valid = maps[0] != IGNORE_INDEX
            cells = " | ".join(f"{(m[valid] == maps[0][valid]).mean():.3f}" for m in maps[1:])
            rows.append(f"| {chip.name.removesuffix('_S1Hand.tif')} | {cells} |")
    return "\n".join(rows)


def write_card(run: Path, models: Path, command: str, samples: Path | None = None) -> str:
    reports = {name: json.loads((run / name / "test.json").read_text()) for name, _, _ in RUNS}
    metadata = {name: load_model(run / name / "best.pt")[1] for name, _, _ in RUNS}
    models.mkdir(parents=True, exist_ok=True)
    shipped = max(("student", "student_sar_only"), key=lambda n: metadata[n].metrics.get("val_miou", -1.0))
    for name, published in (("teacher", "teacher.pt"), (shipped, "student.pt")):
        model, meta = load_model(run / name / "best.pt")
        meta.tile_size = INFERENCE_TILE_SIZE
        meta.metrics = {**meta.metrics, "held_out": {k: reports[name][k] for k in ("miou", "oa", "kappa")}}
        if name == "student":  # the distilled student was trained with this teacher
            meta.training = {**meta.training, "teacher": "teacher.pt"}
        save_model(models / published, model, meta)

    student = metadata[shipped]
    class_names = [c.name for c in student.classes]
    test_chips = reports["student"]["num_scenes"]
    sizes = {name: (models / name).stat().st_size / 1e6 for name in ("student.pt", "teacher.pt")}
    card = TEMPLATE.read_text().format(
        num_classes=len(class_names),
        teacher_bands=", ".join(metadata["teacher"].bands),
        command=command,
        files=", ".join(f"`{name}` {size:.1f} MB" for name, size in sizes.items()),
        class_rows=_class_rows(student),
        val_groups=", ".join(student.training.get("val_groups", [])),
        left_out=_left_out(student, samples),
        training_rows=_training_rows(student),
        widths=list(student.config.widths),
        align_dim=student.config.align_dim,
        align="on" if student.config.align else "off",
        test_chips=test_chips,
        test_groups=", ".join(BUNDLED_VALIDATION_GROUPS),
        score_table=_score_table(reports, class_names),
        verdict=_verdict(reports),
        shipped=dict((name, title) for name, title, _ in RUNS)[shipped],
        shipped_val=metadata[shipped].metrics.get("val_miou", float("nan")),
        other_val=metadata["student_sar_only" if shipped == "student" else "student"].metrics.get(
            "val_miou", float("nan")
        ),
        tiling=tile_agreement(
            models / "student.pt",
            sorted((samples / "sen1floods11").glob("*_S1Hand.tif")) if samples else [],
        ),
    )
    (models / "MODEL_CARD.md").write_text(card)
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--command", default="make train-bundled")
    parser.add_argument("--samples", type=Path, help="sample folder with sen1floods11/ (tile agreement)")
    args = parser.parse_args()
    print(write_card(args.run, args.models, args.command, args.samples))


if __name__ == "__main__":
    main()
