"""OMBRIA: does distillation from an EO teacher help a SAR student? (issue 8)

    python scripts/ombria_experiment.py --root ../shared/data/ombria [--ablations]

Runs, all on the same small CPU budget (``BUDGET``) and resumable (a finished run folder is reused):
1. the teacher on Sentinel-2 (after image, B11/B8/B3 false colour);
2. SAR input choice on the validation split carved from train by id blocks: SAR-only students on the after
   image and on before+after stacked, seed 0; the better validation mIoU is used below;
3. HFD-distilled and SAR-only students (``--no-distill`` equivalent: distill weight 0, no teacher), seeds
   0, 1, 2, with everything else equal;
4. evaluation of every model and of Otsu thresholding on the official test split (per-chip mIoU as in the
   OmbriaNet notebook, pooled mIoU, OA, kappa);
5. ``docs/experiments/ombria.md`` (tables generated here), a validation-curve plot and example predictions;
   the chosen checkpoints are copied to ``runs/ombria/{teacher,student_hfd,student_sar_only}.pt``.
``--ablations`` adds one-seed runs (alignment off, distillation at one scale, distillation weights, logit
distillation) and writes ``docs/experiments/ombria_ablations.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import matplotlib
import numpy as np
import torch
from skimage.filters import threshold_otsu

from hfd_core.data import Scene, read_ombria, split_by_group
from hfd_core.metrics import confusion_matrix, per_chip_miou, scores
from hfd_core.modelfile import load_model
from hfd_core.train import TrainConfig, evaluate_model_file, train_student, train_teacher
from hfd_core.train.datasets import DATASETS
from hfd_core.train.evaluation import predict_scene

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (backend first)

SEEDS = (0, 1, 2)
VALIDATION_FRACTION = 0.15
#: Small network and short schedule: the whole experiment must run on 2 CPU cores in about an hour.
BUDGET = dict(
    epochs=5,
    batch_size=8,
    lr=2e-3,
    tile_size=128,
    samples_per_epoch=192,
    model={"widths": (16, 32, 48, 64), "align_dim": 32},
    device="auto",
    progress=False,
)
ANCHORS = (
    ("U-Net, S1 (published)", 0.551),
    ("U-Net, S2 (published)", 0.579),
    ("Bitemporal U-Net (published)", 0.632),
    ("SVM (published)", 0.625),
    ("OmbriaNet S1+S2 fusion (published)", 0.705),
)
ABLATIONS = {
    "alignment off (teacher and student)": dict(
        distill_weight=1.0, model={**BUDGET["model"], "align": False}
    ),
    "distil finest scale only": dict(distill_weight=1.0, distill_scales=(0,)),
    "distil weight 0.5": dict(distill_weight=0.5),
    "distil weight 3": dict(distill_weight=3.0),
    "logit distillation (DisOptNet-style)": dict(distill_weight=0.0, logit_distill_weight=1.0),
}
SPEC = DATASETS["ombria"]


def scenes(root: Path, split: str, inputs: str) -> list[Scene]:
    """OMBRIA scenes whose SAR is ``inputs`` and whose EO is the S2 after image (the teacher's input)."""
    result = read_ombria(root, split, inputs=inputs)
    for scene in result:
        scene.eo, scene.eo_bands = scene.eo[-3:], scene.eo_bands[-3:]
    return result


def run_folder(out: Path, name: str) -> Path:
    return out / "runs" / name


def train(
    out: Path, name: str, role: str, train_scenes, val_scenes, teacher: Path | None = None, **changes
) -> Path:
    """Train one model unless its folder already holds a finished run; returns its best.pt."""
    folder = run_folder(out, name)
    best, done = folder / "best.pt", folder / "done.json"
    if done.is_file() and best.is_file():
        return best
    config = TrainConfig(out_dir=str(folder), resume=True, **{**BUDGET, **changes})
    if role == "teacher":
        result = train_teacher(train_scenes, val_scenes, config, spec=SPEC)
    else:
        result = train_student(train_scenes, val_scenes, teacher, config, spec=SPEC)
    done.write_text(json.dumps({"best_epoch": result.best_epoch, "history": result.history}))
    return best


def history(out: Path, name: str) -> list[dict]:
    return json.loads((run_folder(out, name) / "done.json").read_text())["history"]


def evaluate(out: Path, name: str, test: list[Scene]) -> dict:
    path = run_folder(out, name) / "test.json"
    if not path.is_file():
        report = evaluate_model_file(run_folder(out, name) / "best.pt", test, device="auto")
        path.write_text(json.dumps(report))
    return json.loads(path.read_text())


def otsu(test: list[Scene]) -> dict:
    """Otsu threshold of each chip's S1 after image; darker than the threshold = flood."""
    matrices = []
    for scene in test:
        after = scene.sar[-1].astype(np.float32)
        prediction = (after < threshold_otsu(after)).astype(np.int64)
        matrices.append(confusion_matrix(prediction, scene.label.astype(np.int64), 2))
    pooled = scores(sum(matrices))
    return {
        "per_chip_miou": per_chip_miou(matrices),
        "miou": pooled["miou"],
        "oa": pooled["oa"],
        "kappa": pooled["kappa"],
    }


def _mean_std(reports: list[dict], key: str) -> str:
    values = [r[key] for r in reports]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def _row(label: str, reports: list[dict], seeds: str | None = None) -> str:
    cells = " | ".join(_mean_std(reports, k) for k in ("per_chip_miou", "miou", "oa", "kappa"))
    return f"| {label} | {seeds or len(reports)} | {cells} |"


def plot_curves(out: Path, runs: dict[str, list[str]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4))
    for (label, names), color in zip(runs.items(), ("tab:green", "tab:blue", "tab:orange"), strict=False):
        for index, name in enumerate(names):
            rows = history(out, name)
            axis.plot(
                [r["epoch"] for r in rows],
                [r["val_miou"] for r in rows],
                color=color,
                alpha=0.8,
                label=label if index == 0 else None,
            )
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation mIoU (pooled)")
    axis.set_title("OMBRIA validation (id blocks carved from train)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_examples(test: list[Scene], models: dict[str, Path], path: Path, count: int = 4) -> None:
    loaded = {label: load_model(p) for label, p in models.items()}
    flooded = sorted(test, key=lambda s: -abs(float(s.label.mean()) - 0.4))[-count:]
    columns = ["S1 after", "S2 after", "mask", *loaded]
    figure, axes = plt.subplots(len(flooded), len(columns), figsize=(2.2 * len(columns), 2.2 * len(flooded)))
    for row, scene in enumerate(flooded):
        panels = [scene.sar[-1], np.moveaxis(scene.eo, 0, -1), scene.label]
        panels += [predict_scene(m, meta, scene, torch.device("cpu")) for m, meta in loaded.values()]
        for col, (title, panel) in enumerate(zip(columns, panels, strict=True)):
            axis = axes[row, col]
            if col == 0:
                axis.imshow(panel, cmap="gray")
            elif col == 1:
                axis.imshow(panel)
            else:
                axis.imshow(panel, cmap="Blues", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder holding OmbriaS1/ and OmbriaS2/")
    parser.add_argument("--out", type=Path, default=Path("runs/ombria"))
    parser.add_argument("--docs", type=Path, default=Path("docs/experiments"))
    parser.add_argument("--ablations", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out, docs = args.out, args.docs
    docs.mkdir(parents=True, exist_ok=True)

    data = {}
    for inputs in ("after", "before_after"):
        train_all = scenes(args.root, "train", inputs)
        data[inputs] = (
            *split_by_group(train_all, VALIDATION_FRACTION, seed=0),
            scenes(args.root, "test", inputs),
        )
    train_after, val_after, _ = data["after"]
    teacher = train(out, "teacher", "teacher", train_after, val_after)

    choice = {}
    for inputs in ("after", "before_after"):
        train_scenes, val_scenes, _ = data[inputs]
        train(out, f"sar_only_{inputs}_s0", "student", train_scenes, val_scenes, distill_weight=0.0, seed=0)
        choice[inputs] = max(r["val_miou"] for r in history(out, f"sar_only_{inputs}_s0"))
    inputs = max(choice, key=choice.get)
    train_scenes, val_scenes, test = data[inputs]

    hfd, sar_only = [], []
    for seed in SEEDS:
        hfd.append(f"hfd_{inputs}_s{seed}")
        sar_only.append(f"sar_only_{inputs}_s{seed}")
        train(out, hfd[-1], "student", train_scenes, val_scenes, teacher, distill_weight=1.0, seed=seed)
        train(out, sar_only[-1], "student", train_scenes, val_scenes, distill_weight=0.0, seed=seed)

    reports = {name: evaluate(out, name, test) for name in [*hfd, *sar_only]}
    teacher_report = evaluate(out, "teacher", data["after"][2])
    baseline = otsu(test)
    best_hfd = max(hfd, key=lambda n: reports[n]["per_chip_miou"])
    best_sar = max(sar_only, key=lambda n: reports[n]["per_chip_miou"])
    for name, target in (("teacher", "teacher"), (best_hfd, "student_hfd"), (best_sar, "student_sar_only")):
        shutil.copyfile(run_folder(out, name) / "best.pt", out / f"{target}.pt")

    plot_curves(
        out, {"teacher (S2)": ["teacher"], "HFD student (S1)": hfd, "SAR-only student (S1)": sar_only},
        docs / "ombria_val_curves.png",
    )  # fmt: skip
    plot_examples(
        test,
        {"SAR-only": out / "student_sar_only.pt", "HFD": out / "student_hfd.pt"},
        docs / "ombria_examples.png",
    )
    write_report(docs / "ombria.md", args, inputs, choice, reports, hfd, sar_only, teacher_report, baseline)
    if args.ablations:
        run_ablations(
            out, docs, train_scenes, val_scenes, test, teacher, reports[hfd[0]], reports[sar_only[0]]
        )


def write_report(path, args, inputs, choice, reports, hfd, sar_only, teacher_report, baseline) -> None:
    header = "| method | seeds | per-chip mIoU | pooled mIoU | OA | kappa |\n|---|---|---|---|---|---|"
    anchor_rows = "\n".join(f"| {label} | - | {value:.3f} | - | - | - |" for label, value in ANCHORS)
    gap = [
        reports[h]["per_chip_miou"] - reports[s]["per_chip_miou"] for h, s in zip(hfd, sar_only, strict=True)
    ]
    verdict = "helps" if min(gap) > 0 else "does not help consistently" if max(gap) > 0 else "does not help"
    budget = ", ".join(f"{k} {v}" for k, v in BUDGET.items() if k not in ("device", "progress"))
    text = f"""# OMBRIA: distilled SAR student vs SAR-only student

Generated by `scripts/ombria_experiment.py` (`make reproduce-ombria`); do not edit by hand.
Data: OMBRIA official split ({len(reports[hfd[0]]["per_chip"])} test chips), `--root {args.root}`.
Validation: {int(VALIDATION_FRACTION * 100)} % of the training id blocks (10 consecutive ids
each), never used for training.

## Test split (official), per-chip mIoU = OmbriaNet notebook protocol

{header}
{anchor_rows}
{_row("Otsu threshold on S1 after (ours)", [baseline], "-")}
{_row("Teacher, S2 after (ours)", [teacher_report])}
{_row(f"SAR-only student, S1 {inputs} (ours)", [reports[n] for n in sar_only])}
{_row(f"HFD-distilled student, S1 {inputs} (ours)", [reports[n] for n in hfd])}

Mean ± standard deviation over seeds {list(SEEDS)}. Per seed, distilled minus SAR-only per-chip mIoU:
{", ".join(f"{g:+.3f}" for g in gap)}. On this budget distillation **{verdict}**.

## SAR input choice (validation, SAR-only student, seed 0)

| S1 input | best validation mIoU |
|---|---|
{chr(10).join(f"| {k} | {v:.3f} |" for k, v in choice.items())}

Chosen: **{inputs}**.

## Budget and honest reading

CPU-only budget so the whole target fits in about an hour on 2 cores: {budget}; the teacher and every
student use the same network and schedule, the students differ only in the distillation loss (weight 1 on all
four aligned pyramid levels vs 0). This is far below the published U-Nets' training, so compare our rows with
each other first; the anchors show where full training lands. The student sees only SAR at test time.

![validation curves](ombria_val_curves.png)

![examples](ombria_examples.png)
"""
    path.write_text(text)


def run_ablations(out, docs, train_scenes, val_scenes, test, teacher, hfd_report, sar_report) -> None:
    rows = [
        f"| HFD, all scales, weight 1 | {hfd_report['per_chip_miou']:.3f} | {hfd_report['miou']:.3f} |",
        f"| SAR-only | {sar_report['per_chip_miou']:.3f} | {sar_report['miou']:.3f} |",
    ]
    for label, changes in ABLATIONS.items():
        name = "ablation_" + label.split(" (")[0].replace(" ", "_")
        ablation_teacher = teacher
        if "model" in changes:  # the student copies its teacher's architecture: train a matching teacher
            ablation_teacher = train(
                out, f"{name}_teacher", "teacher", train_scenes, val_scenes, model=changes["model"]
            )
        train(out, name, "student", train_scenes, val_scenes, ablation_teacher, seed=0, **changes)
        report = evaluate(out, name, test)
        rows.append(f"| {label} | {report['per_chip_miou']:.3f} | {report['miou']:.3f} |")
    (docs / "ombria_ablations.md").write_text(
        "# OMBRIA ablations (one seed: 0)\n\nGenerated by `make ablate-ombria`; same budget as ombria.md.\n\n"
        "| variant | per-chip mIoU | pooled mIoU |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )


if __name__ == "__main__":
    main()
