"""The generated OMBRIA report (``docs/experiments/ombria.md``): tables and reading from finished runs."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from hfd_core.models import HFDNetConfig

METRICS = ("per_chip_miou", "miou", "oa", "kappa")
#: Per-chip mIoU on the official test split, from the OmbriaNet evaluation notebook (geodrak/OMBRIA).
ANCHORS = (
    ("U-Net, S1 (published)", 0.551),
    ("U-Net, S2 (published)", 0.579),
    ("Bitemporal U-Net (published)", 0.632),
    ("SVM (published)", 0.625),
    ("OmbriaNet S1+S2 fusion (published)", 0.705),
)
FUSION_ANCHOR = 0.705
HEADER = "| method | seeds | per-chip mIoU | pooled mIoU | OA | kappa |\n|---|---|---|---|---|---|"


@dataclass
class RunSummary:
    """One finished training run and its scores on the official test split."""

    name: str
    seed: int
    best_epoch: int
    test: dict
    seconds: float | None = None


@dataclass
class Choice:
    """One candidate of a choice made on validation (teacher input, SAR input, distillation variant)."""

    label: str
    val_miou: float
    run: RunSummary


@dataclass
class Experiment:
    """Everything the report shows; lists hold only the runs finished so far."""

    root: str
    command: str
    budget: dict
    seeds: tuple[int, ...]
    validation: str
    inputs: str | None = None
    teacher_inputs: str | None = None
    variant: str | None = None
    teacher_choice: list[Choice] = field(default_factory=list)
    sar_choice: list[Choice] = field(default_factory=list)
    variants: list[Choice] = field(default_factory=list)
    teacher: RunSummary | None = None
    hfd: list[RunSummary] = field(default_factory=list)
    sar_only: list[RunSummary] = field(default_factory=list)
    otsu: dict | None = None
    ablations: list[tuple[str, RunSummary]] = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def mean_std(values: list[float]) -> str:
    """``0.612`` for one value, ``0.612 ± 0.010`` (sample standard deviation) for several, ``-`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table_row(label: str, reports: list[dict], seeds: str) -> str:
    cells = " | ".join(mean_std([float(r[key]) for r in reports]) for key in METRICS)
    return f"| {label} | {seeds} | {cells} |"


def _seeds(runs: list[RunSummary]) -> str:
    return ", ".join(str(r.seed) for r in runs)


def results_table(exp: Experiment) -> str:
    """Published anchors, then our rows (Otsu, teacher, SAR-only, distilled) with mean ± std over seeds."""
    rows = [HEADER, *(f"| {label} | - | {value:.3f} | - | - | - |" for label, value in ANCHORS)]
    if exp.otsu is not None:
        rows.append(table_row("Otsu threshold, S1 after (ours)", [exp.otsu], "-"))
    if exp.teacher is not None:
        label = f"Teacher, S2 {exp.teacher_inputs} (ours; EO at test time)"
        rows.append(table_row(label, [exp.teacher.test], "0"))
    distilled = f"HFD-distilled student ({exp.variant})" if exp.variant else "HFD-distilled student"
    for label, runs in (("SAR-only student", exp.sar_only), (distilled, exp.hfd)):
        if runs:
            rows.append(table_row(f"{label}, S1 {exp.inputs} (ours)", [r.test for r in runs], _seeds(runs)))
    return "\n".join(rows)


def paired_gaps(hfd: list[RunSummary], sar_only: list[RunSummary]) -> dict[int, float]:
    """Per seed present in both lists: distilled minus SAR-only per-chip mIoU."""
    sar = {r.seed: r.test["per_chip_miou"] for r in sar_only}
    return {r.seed: r.test["per_chip_miou"] - sar[r.seed] for r in hfd if r.seed in sar}


def verdict(gaps: dict[int, float], spread: float) -> str:
    """Plain-words effect of distillation from the paired per-seed gaps and the seed-to-seed spread."""
    if not gaps:
        return "cannot be judged yet (no seed has both students finished)"
    values = list(gaps.values())
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{'helps' if mean > 0 else 'does not help'} on the one seed finished so far ({mean:+.3f})"
    if min(values) > 0 and mean > spread:
        return f"helps: {mean:+.3f} per-chip mIoU on average, positive for every seed"
    if max(values) < 0 and -mean > spread:
        return f"hurts: {mean:+.3f} per-chip mIoU on average, negative for every seed"
    return (
        f"shows no effect beyond seed noise: mean gap {mean:+.3f} against a seed-to-seed standard "
        f"deviation of {spread:.3f}"
    )


def reading(exp: Experiment) -> list[str]:
    """Sentences comparing our rows with each other, with Otsu and with the published anchors."""
    lines = []
    hfd = [r.test["per_chip_miou"] for r in exp.hfd]
    sar = [r.test["per_chip_miou"] for r in exp.sar_only]
    spread = max((statistics.stdev(v) for v in (hfd, sar) if len(v) > 1), default=0.0)
    gaps = paired_gaps(exp.hfd, exp.sar_only)
    if gaps:
        per_seed = ", ".join(f"seed {s}: {g:+.3f}" for s, g in sorted(gaps.items()))
        lines.append(f"Distillation {verdict(gaps, spread)} (distilled minus SAR-only, {per_seed}).")
    if exp.otsu is not None and (hfd or sar):
        otsu = exp.otsu["per_chip_miou"]
        for label, values in (("distilled", hfd), ("SAR-only", sar)):
            if values:
                side = "above" if statistics.mean(values) > otsu else "below"
                lines.append(
                    f"The {label} student ({statistics.mean(values):.3f}) is {side} Otsu thresholding "
                    f"of the same S1 after image ({otsu:.3f})."
                )
    if hfd:
        best = max(hfd)
        lines.append(
            f"The best distilled seed reaches {best:.3f}, {abs(FUSION_ANCHOR - best):.3f} "
            f"{'below' if best < FUSION_ANCHOR else 'above'} the published S1+S2 fusion network "
            f"({FUSION_ANCHOR}) that it aims to match without optical data."
        )
    if exp.teacher is not None:
        lines.append(
            f"The S2 teacher scores {exp.teacher.test['per_chip_miou']:.3f} per-chip mIoU (published U-Net "
            f"on S2: 0.579); the students can only be taught what the teacher knows."
        )
    return lines


def _steps(budget: dict, role: str) -> int:
    schedule = budget["schedules"][role]
    return schedule["epochs"] * (schedule["samples_per_epoch"] // budget["batch_size"])


def trained_runs(exp: Experiment, with_ablations: bool = False) -> list[RunSummary]:
    """Every finished run once (a run can be a choice candidate and a compared student at the same time)."""
    runs = [c.run for c in [*exp.teacher_choice, *exp.sar_choice, *exp.variants]] + [*exp.sar_only, *exp.hfd]
    if with_ablations:
        runs += [run for _, run in exp.ablations]
    return list({run.name: run for run in runs}.values())


def budget_text(exp: Experiment) -> str:
    b = exp.budget
    schedules = "; ".join(
        f"{label} {b['schedules'][role]['epochs']} epochs x {b['schedules'][role]['samples_per_epoch']} "
        f"windows = {_steps(b, role)} steps"
        for role, label in (("teacher", "teacher"), ("student", "each student"))
    )
    max_offset = HFDNetConfig(1, 2, **b["model"]).max_offset
    offsets = "unbounded" if max_offset is None else f"bounded to {max_offset:g} coarse pixel(s)"
    lines = [
        f"- Network: HFD-Net with encoder widths {tuple(b['model']['widths'])} and aligned pyramid of "
        f"{b['model']['align_dim']} channels (default: (24, 48, 96, 192) and 64, about 2.6 GFLOPs per "
        f"256x256 forward pass), learned alignment offsets {offsets}. Teacher and students share it.",
        f"- Schedules: random {b['tile_size']}x{b['tile_size']} windows cut from the 256x256 chips (flips "
        f"and 90-degree rotations), batch {b['batch_size']}, AdamW lr {b['lr']} with poly decay, the best "
        f"epoch on validation kept. {schedules}.",
        "- Runs: two teachers (S2 after; S2 before and after), the better on validation teaches; SAR-only "
        "students on both S1 inputs (seed 0) for the input choice; three distillation variants (seed 0) "
        "for the variant choice; then the chosen distilled student and the SAR-only student on the same "
        f"schedule for seeds {list(exp.seeds)}. Every choice is made on validation, never on test.",
    ]
    if exp.timing:
        lines.append(
            "- Measured on this machine (2 CPU cores): one training step of 8 windows of 128x128 takes "
            + ", ".join(f"{s:.2f} s with {name}" for name, s in exp.timing.items())
            + "."
        )
    runs = [r for r in trained_runs(exp, with_ablations=True) if r.seconds]
    if runs:
        total = sum(r.seconds for r in runs)
        lines.append(
            f"- Wall time of the runs timed here: {total / 60:.1f} min for {len(runs)} runs "
            f"({total / 60 / len(runs):.1f} min each, validation included)."
        )
    lines.append(
        "- Why: the issue asks for the whole target in under 90 minutes on 2 CPU cores. The narrow network "
        "on 128x128 windows costs a fraction of the default one per step, which buys seeds (the spread "
        "between seeds is what tells a real effect from noise) and choices on validation rather than a "
        "longer schedule. This is still a small fraction of the published U-Nets' training: compare our "
        "rows with each other first."
    )
    return "\n".join(lines)


def runs_table(exp: Experiment) -> str:
    rows = [
        "| run | seed | best epoch | per-chip mIoU | pooled mIoU | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for run in trained_runs(exp):
        minutes = f"{run.seconds / 60:.1f}" if run.seconds else "-"
        rows.append(
            f"| {run.name} | {run.seed} | {run.best_epoch} | {run.test['per_chip_miou']:.3f} | "
            f"{run.test['miou']:.3f} | {minutes} |"
        )
    return "\n".join(rows)


def choice_table(title: str, choices: list[Choice]) -> str:
    """Candidates with their best validation mIoU (which decides) and their test scores (information only)."""
    rows = [
        f"| {title} | best validation mIoU (pooled) | test per-chip mIoU | test pooled mIoU |",
        "|---|---|---|---|",
    ]
    for c in choices:
        rows.append(
            f"| {c.label} | {c.val_miou:.3f} | {c.run.test['per_chip_miou']:.3f} | {c.run.test['miou']:.3f} |"
        )
    return "\n".join(rows)


def ablation_table(exp: Experiment) -> str:
    rows = ["| variant (seed 0) | per-chip mIoU | pooled mIoU | OA | kappa |", "|---|---|---|---|---|"]
    reference = [
        (f"HFD, chosen variant ({exp.variant}), all scales, alignment on", r) for r in exp.hfd if r.seed == 0
    ]
    reference += [("SAR-only", r) for r in exp.sar_only if r.seed == 0]
    for label, run in [*reference, *exp.ablations]:
        rows.append(f"| {label} | " + " | ".join(f"{float(run.test[k]):.3f}" for k in METRICS) + " |")
    return "\n".join(rows)


def render(exp: Experiment) -> str:
    """The whole markdown document."""
    status = (
        f"**Partial: {len(exp.missing)} run(s) not finished yet ({', '.join(exp.missing)}); the tables show "
        "the finished ones. Run the same command again to finish (finished runs are reused).**\n\n"
        if exp.missing
        else ""
    )
    chips = exp.otsu["num_scenes"] if exp.otsu else "?"
    parts = [
        "# OMBRIA: distilled SAR student vs SAR-only student\n",
        "Generated by `scripts/ombria_experiment.py`; do not edit by hand.\n",
        status + f"Data: OMBRIA official split (624 train chip sets, {chips} test), `--root {exp.root}`. "
        f"Validation: {exp.validation}. The students read only SAR at test time.\n",
        "## Official test split (per-chip mIoU = OmbriaNet notebook protocol)\n",
        results_table(exp) + "\n",
        "Mean ± sample standard deviation over the seeds listed. Per-chip mIoU: mean over chips of the "
        "two-class mIoU (a class absent from both reference and prediction of a chip is left out). Pooled: "
        "one confusion matrix over all test pixels.\n",
        "## Reading\n",
        "\n".join(f"- {line}" for line in reading(exp)) + "\n",
        "## Choices on validation (seed 0; test columns for information only, not used to choose)\n",
        choice_table("teacher input (S2)", exp.teacher_choice) + "\n",
        f"Chosen: **{exp.teacher_inputs or '-'}**.\n",
        choice_table("student input (S1), SAR-only students", exp.sar_choice) + "\n",
        f"Chosen: **{exp.inputs or '-'}**.\n",
        choice_table("distillation variant", exp.variants) + "\n",
        f"Chosen: **{exp.variant or '-'}**.\n",
        "## Budget\n",
        budget_text(exp) + "\n",
        "## Runs\n",
        runs_table(exp) + "\n",
    ]
    if exp.ablations:
        parts += [
            "## Ablations (one seed: 0; `make ablate-ombria`)\n",
            ablation_table(exp) + "\n",
            "One seed only: differences smaller than the seed-to-seed spread of the main table are noise.\n",
        ]
    parts += [
        "## Commands\n",
        "```\n" + exp.command + "\n```\n",
        "Checkpoints: `runs/ombria/teacher.pt`, `runs/ombria/student_hfd.pt`, "
        "`runs/ombria/student_sar_only.pt` "
        "(the teacher, and of each student the seed with the best validation mIoU). Per-run test reports: "
        "`runs/ombria/runs/<run>/test.json`.\n",
        "![validation curves](ombria_val_curves.png)\n",
        "![examples: S1 after, S2 after, mask, SAR-only, distilled](ombria_examples.png)\n",
    ]
    return "\n".join(parts)
