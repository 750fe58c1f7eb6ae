"""OMBRIA label efficiency (issue 17): what an EO teacher buys when SAR labels are scarce.

    python scripts/ombria_label_efficiency.py --root ../shared/data/ombria [--budget smoke] [--report-only]

The analyst's case: many co-registered S1 + S2 pairs, few or no SAR labels. Label fractions of OMBRIA's
training chips (``FRACTIONS``), nested (one fixed permutation of the training chips; a fraction takes its
first chips), the same chips for both arms and every seed:
(a) SAR-only student: cross-entropy on the labelled chips alone;
(b) HFD student: the same labelled chips plus every training pair, with the HFD multi-scale feature loss on
    the aligned pyramid (weight 1, all scales) and the frozen teacher's classes as pseudo-labels where a chip
    has no label and the teacher's probability reaches the confidence chosen on validation. At 0 % only (b)
    exists (label-free), beside Otsu.
The teacher is trained once, on S2 before + after with all labels. Choices made earlier on validation (issue
8, ``docs/experiments/ombria.md``): S1 after as the student's input, S2 before + after as the teacher's, the
feature loss at weight 1. Made here on validation (10 % labels, seed 0): the pseudo-label confidence. Every
run keeps its best epoch on the validation id blocks (85 labelled chips, the same for both arms); no choice
sees the test split.

Resumable: finished runs are reused (after checking their settings), a cut run resumes from ``last.ckpt``;
the page is rewritten after every run, so a cut session leaves a partial, honest table. Uses a GPU when one
is present (``device="auto"``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from ombria.baseline import evaluate_otsu
from ombria.label_efficiency import Arm, Point, plot, reading, results_table
from ombria.runs import SPLIT_SEED, Data, Runs, budget, load_data, log

from hfd_core import IGNORE_INDEX
from hfd_core.data import Scene

FRACTIONS = (0.0, 0.05, 0.10, 0.25, 1.0)
SEEDS = (0, 1, 2, 3, 4)
#: Runs go seed by seed, the checked fraction first: a cut session has every fraction at some seeds.
ORDER = (0.10, 0.0, 0.05, 0.25, 1.0)
CHOICE_FRACTION = 0.10
#: Pseudo-label confidence candidates: every teacher class, or only where its probability is at least 0.8.
CONFIDENCES = (0.0, 0.8)
DISTILLATION = dict(distill_weight=1.0, distill_loss="feature", pseudo_labels=True)
SAR_ONLY = dict(distill_weight=0.0)
#: "standard": about 60 minutes on 2 idle CPU cores (teacher 5 min, each student 1 to 1.5 min); "smoke":
#: checks the driver end to end in minutes (two seeds).
BUDGETS = {
    "standard": budget(128, 8, teacher=(16, 800), student=(5, 512)),
    "smoke": budget(64, 4, teacher=(1, 8), student=(1, 8)),
}
SMOKE_SEEDS = (0, 1)


def fraction_name(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


def labelled_order(train: list[Scene]) -> list[str]:
    """The training chips in the one fixed order that every fraction takes its first chips from (nesting)."""
    names = sorted(scene.name for scene in train)
    return [names[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(names))]


def labelled_count(fraction: float, total: int) -> int:
    return round(fraction * total)


def without_label(scene: Scene) -> Scene:
    """The chip as an unlabelled pair: every pixel IGNORE_INDEX (pseudo-labels may fill it)."""
    return replace(scene, label=np.full(scene.shape, IGNORE_INDEX, np.uint8))


class LabelEfficiency:
    """The plan (teacher, confidence choice, fractions x seeds x arms); the page from finished runs."""

    def __init__(self, args: argparse.Namespace, data: Data):
        self.args = args
        self.budget = BUDGETS[args.budget]
        self.seeds = SMOKE_SEEDS if args.budget == "smoke" else SEEDS
        self.runs = Runs(args.out, self.budget, train_allowed=not args.report_only)
        self.pairs = data.view("after", "before_after")  # S1 after for the students, S2 before + after
        self.order = labelled_order(self.pairs.train)
        self._check_fractions()
        self.otsu = evaluate_otsu(self.pairs.test)

    def _check_fractions(self) -> None:
        """The labelled chips of every fraction, written once; a later run with other chips is refused."""
        path = self.args.out / "labelled_chips.json"
        chosen = {fraction_name(f): self.order[: labelled_count(f, len(self.order))] for f in FRACTIONS}
        if path.is_file() and json.loads(path.read_text()) != chosen:
            raise SystemExit(f"{path} lists other labelled chips (other data?); use another --out")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(chosen, indent=1))

    def data(self, fraction: float, arm: str) -> Data:
        """Arm (a): the labelled chips only; arm (b): those plus every other training pair without label."""
        labelled = set(self.order[: labelled_count(fraction, len(self.order))])
        train = self.pairs.train
        if arm == "sar_only":
            chips = [s for s in train if s.name in labelled]
        else:
            chips = [s if s.name in labelled else without_label(s) for s in train]
        return Data(chips, self.pairs.val, self.pairs.test)

    @property
    def teacher(self) -> Path:
        return self.runs.folder("teacher") / "best.pt"

    def choice_runs(self) -> dict[float, str]:
        return {c: f"{fraction_name(CHOICE_FRACTION)}_hfd_conf{c:g}_s0" for c in CONFIDENCES}

    def confidence(self) -> float | None:
        """The pseudo-label confidence with the best validation mIoU, once its candidates are finished."""
        names = self.choice_runs()
        if not all(self.runs.finished(n) for n in names.values()):
            return None
        return max(names, key=lambda c: self.runs.best_val_miou(names[c]))

    @staticmethod
    def run_name(fraction: float, arm: str, seed: int) -> str:
        return f"{fraction_name(fraction)}_{arm}_s{seed}"

    def train(self, fraction: float, arm: str, seed: int, confidence: float) -> None:
        schedule = self.budget["schedules"]["student"]
        name = self.run_name(fraction, arm, seed)
        if arm == "hfd":
            chosen = self.choice_runs()[confidence]
            if fraction == CHOICE_FRACTION and seed == 0 and not self.runs.folder(name).exists():
                # the chosen candidate is this run
                shutil.copytree(self.runs.folder(chosen), self.runs.folder(name))
            changes = dict(DISTILLATION, pseudo_label_confidence=confidence)
            self.runs.train(
                name, "student", self.data(fraction, arm), self.teacher, seed=seed, **changes, **schedule
            )
        else:
            self.runs.train(name, "student", self.data(fraction, arm), seed=seed, **SAR_ONLY, **schedule)

    def run(self) -> None:
        schedules = self.budget["schedules"]
        self.runs.train("teacher", "teacher", self.pairs, **schedules["teacher"])
        self.report()
        for confidence, name in self.choice_runs().items():
            changes = dict(DISTILLATION, pseudo_label_confidence=confidence)
            data = self.data(CHOICE_FRACTION, "hfd")
            self.runs.train(name, "student", data, self.teacher, seed=0, **changes, **schedules["student"])
            self.report()
        confidence = self.confidence()
        for seed in self.seeds:
            for fraction in ORDER:
                for arm in ("hfd", "sar_only") if fraction > 0 else ("hfd",):
                    self.train(fraction, arm, seed, confidence)
                    self.report()

    def points(self) -> list[Point]:
        test = self.pairs.test
        points = []
        for fraction in FRACTIONS:
            point = Point(fraction, labelled_count(fraction, len(self.order)))
            for arm in ("hfd", "sar_only"):
                reports = {
                    seed: self.runs.summary(self.run_name(fraction, arm, seed), seed, test).test
                    for seed in self.seeds
                    if self.runs.finished(self.run_name(fraction, arm, seed))
                }
                setattr(point, arm, Arm(reports))
            points.append(point)
        return points

    def checkpoints(self, points: list[Point]) -> None:
        """``<out>/<fraction>/student_{hfd,sar_only}.pt``: each arm's best validation seed; the teacher."""
        out = self.args.out
        if self.runs.finished("teacher"):
            shutil.copyfile(self.teacher, out / "teacher.pt")
        for point in points:
            for arm in ("hfd", "sar_only"):
                seeds = getattr(point, arm).reports
                if not seeds:
                    continue
                names = [self.run_name(point.fraction, arm, s) for s in seeds]
                best = max(names, key=self.runs.best_val_miou)
                target = out / fraction_name(point.fraction) / f"student_{arm}.pt"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.runs.folder(best) / "best.pt", target)

    def planned(self) -> list[str]:
        names = ["teacher", *self.choice_runs().values()]
        for seed in self.seeds:
            for fraction in ORDER:
                arms = ("hfd", "sar_only") if fraction > 0 else ("hfd",)
                names += [self.run_name(fraction, arm, seed) for arm in arms]
        return list(dict.fromkeys(names))

    def report(self) -> None:
        points = self.points()
        self.checkpoints(points)
        docs = self.args.docs
        docs.mkdir(parents=True, exist_ok=True)
        teacher = (
            self.runs.summary("teacher", 0, self.pairs.test).test["per_chip_miou"]
            if self.runs.finished("teacher")
            else None
        )
        otsu = self.otsu["per_chip_miou"]
        plot(points, otsu, teacher, docs / "ombria_label_efficiency.png")
        (docs / "ombria_label_efficiency.md").write_text(self.page(points, otsu, teacher))
        summary = {
            fraction_name(p.fraction): {
                "labelled_chips": p.labelled,
                "hfd": p.hfd.means(),
                "sar_only": p.sar_only.means(),
            }
            for p in points
        }
        (self.args.out / "summary.json").write_text(json.dumps({"otsu": otsu, "teacher": teacher, **summary}))
        missing = [n for n in self.planned() if not self.runs.finished(n)]
        log(f"wrote {docs / 'ombria_label_efficiency.md'} ({len(missing)} planned run(s) not finished)")

    def choice_table(self) -> str:
        rows = ["| pseudo-label confidence | best validation mIoU (pooled) |", "|---|---|"]
        for confidence, name in self.choice_runs().items():
            value = f"{self.runs.best_val_miou(name):.3f}" if self.runs.finished(name) else "not finished"
            rows.append(f"| {confidence:g} | {value} |")
        chosen = self.confidence()
        rows.append(f"\nChosen: **{chosen:g}**." if chosen is not None else "\nNot chosen yet.")
        return "\n".join(rows)

    def minutes(self) -> str:
        done = [self.runs.done(n) for n in self.planned() if self.runs.finished(n)]
        return f"{sum(d.get('seconds') or 0 for d in done) / 60:.0f} min for {len(done)} runs"

    def page(self, points: list[Point], otsu: float, teacher: float | None) -> str:
        schedule, root = self.budget["schedules"], self.args.root
        script = shlex.join(["python", "scripts/ombria_label_efficiency.py", "--root", str(root)])
        evaluate = f"python -m hfd_core evaluate --dataset ombria --root {root} --split test"
        missing = [n for n in self.planned() if not self.runs.finished(n)]
        student = schedule["student"]
        lines = [
            "# OMBRIA label efficiency: what an EO teacher buys when SAR labels are scarce",
            "",
            "Generated by `scripts/ombria_label_efficiency.py`; do not edit by hand.",
            "",
            f"Data: OMBRIA official split, `--root {root}`; {len(self.order)} training chips (S1 after, S2 "
            "before "
            f"and after), validation {len(self.pairs.val)} chips (id blocks carved from train, never trained "
            f"on), test {len(self.pairs.test)} chips. Label fractions are nested and the same for both arms "
            "and every seed (`labelled_chips.json`).",
            "",
            "## Result on the official test split (per-chip mIoU, mean ± sample std over seeds)",
            "",
            results_table(points, otsu, teacher),
            "",
            "Intervals: 95 %, mean difference of the per-chip mIoU, HFD minus SAR-only, same seed and same "
            "chip. "
            "Bootstrap: 4000 draws resampling both the seeds and the test chips with replacement (the "
            "verdict "
            "column uses it). Paired t-interval: over the seeds' mean differences only (ignores the chip "
            "sample).",
            "",
            "![both arms against the label fraction](ombria_label_efficiency.png)",
            "",
            "## Reading",
            "",
            *(f"- {line}" for line in reading(points, otsu)),
            "",
            "## Method",
            "",
            "- Arm (a), SAR-only: cross-entropy on the labelled chips' S1 after image alone.",
            "- Arm (b), HFD: the same labelled chips plus every training pair; the HFD feature loss (aligned "
            "multi-scale features against the frozen teacher's, weight 1, all scales) on every pair, and the "
            "teacher's classes as pseudo-labels on the chips without labels where its probability reaches "
            "the "
            "chosen confidence. Windows are drawn from all pairs alike, so at 5 % most windows carry "
            "pseudo-labels.",
            "- Teacher: trained once on S2 before + after with all training labels "
            f"({schedule['teacher']['epochs']} epochs x {schedule['teacher']['samples_per_epoch']} windows).",
            f"- Every student: {student['epochs']} epochs x {student['samples_per_epoch']} random "
            f"{self.budget['tile_size']} x {self.budget['tile_size']} windows (flips, 90° rotations), batch "
            f"{self.budget['batch_size']}, AdamW lr {self.budget['lr']} with poly decay, encoder widths "
            f"{tuple(self.budget['model']['widths'])}, aligned pyramid {self.budget['model']['align_dim']} "
            "channels; the best epoch on validation kept. The same for both arms at every fraction: arm (a) "
            "at "
            "5 % sees its few chips many times, which is what an analyst with few labels would do.",
            "- Choices: S1 after, S2 before + after and the feature loss at weight 1 were chosen on "
            "validation in "
            "the full-label experiment (`ombria.md`); the pseudo-label confidence here, on validation at 10 "
            "% "
            "labels, seed 0:",
            "",
            self.choice_table(),
            "",
            f"- Caveat: epochs are selected on {len(self.pairs.val)} labelled validation chips in both arms; "
            "an analyst with 5 % of the labels would have fewer. It favours neither arm.",
            f"- Wall time of the runs so far: {self.minutes()}.",
            "",
            "## Reproduce and score the checkpoints",
            "",
            "```",
            f"make label-efficiency-ombria    # = {script}",
            f"{script} --report-only    # rewrite this page from the finished runs",
            *(
                f"{evaluate} --model runs/ombria_label_efficiency/{fraction_name(f)}/student_{arm}.pt "
                f"--json {fraction_name(f)}_{arm}.json"
                for f in FRACTIONS
                for arm in ("hfd", "sar_only")[: 1 + (f > 0)]
            ),
            f"{evaluate} --model runs/ombria_label_efficiency/teacher.pt --json teacher.json",
            "```",
            "",
            "Checkpoints: each arm's best validation seed per fraction.",
        ]
        if missing:
            lines += ["", f"Not finished yet ({len(missing)}): {', '.join(missing)}."]
        return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder holding OmbriaS1/ and OmbriaS2/")
    parser.add_argument("--out", type=Path, default=Path("runs/ombria_label_efficiency"))
    parser.add_argument("--docs", type=Path, default=Path("docs/experiments"), help="generated page folder")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="standard")
    parser.add_argument("--report-only", action="store_true", help="train nothing; report finished runs")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of torch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log(f"reading OMBRIA from {args.root}")
    start = time.perf_counter()
    experiment = LabelEfficiency(args, load_data(args.root))
    if not args.report_only:
        experiment.run()
    experiment.report()
    log(f"done in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
