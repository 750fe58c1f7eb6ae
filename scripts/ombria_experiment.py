"""OMBRIA: does distillation from an EO teacher help a SAR student? (issue 8)

    python scripts/ombria_experiment.py --root ../shared/data/ombria [--ablations] [--report-only]

Runs, on a CPU budget (``BUDGETS``: one network, a schedule per role) and resumable (a finished run folder is
reused after checking that it was trained with the same settings; an unfinished one resumes from its
``last.ckpt``). Every choice is made on the validation split carved from train by id blocks, never on test:
1. teachers on Sentinel-2 (B11/B8/B3 false colour): the after image, and before and after stacked; the
   better one teaches;
2. SAR input choice: the seed-0 SAR-only students on the S1 after image and on before+after stacked (full
   schedule; the chosen one is also the seed-0 SAR-only student of step 4);
3. distillation variant choice (seed 0): the HFD feature loss at weights 1 and 0.3, the affinity
   (pair-wise relation) loss at weight 10 (its values are about a tenth of the feature loss's);
4. the chosen distilled student and the SAR-only student (distill weight 0, no teacher), seeds 0, 1, 2,
   everything else equal (same schedule, seed, network);
5. evaluation of every model and of Otsu thresholding on the official test split (per-chip mIoU as in the
   OmbriaNet notebook, pooled mIoU, OA, kappa);
6. ``docs/experiments/ombria.md`` (tables generated here, rewritten after every finished run so a cut session
   leaves a partial table), a validation-curve plot and example predictions; the chosen checkpoints are
   copied to ``runs/ombria/{teacher,student_hfd,student_sar_only}.pt``.
``--ablations`` adds one-seed runs on top of the chosen variant (alignment off, distillation at one scale,
logit distillation) to the same document. ``--report-only`` trains nothing and writes the document from the
runs already finished.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from ombria.baseline import evaluate_otsu
from ombria.plots import plot_curves, plot_examples
from ombria.report import Choice, Experiment, RunSummary, render
from ombria.runs import VALIDATION_FRACTION, Data, Runs, budget, load_data, log

from hfd_core.data import Scene
from hfd_core.models import HFDNet, HFDNetConfig

SEEDS = (0, 1, 2)
INPUTS = ("after", "before_after")
#: "standard": the reproduce target (about 40 minutes on 2 free CPU cores, 55 with the ablations); "quick": 4x
#: shorter students and a shorter teacher; "smoke": checks the driver end to end in minutes.
BUDGETS = {
    "standard": budget(128, 8, teacher=(16, 800), student=(8, 800)),
    "quick": budget(128, 8, teacher=(8, 480), student=(5, 192)),
    "smoke": budget(64, 4, teacher=(1, 8), student=(1, 8)),
}
SAR_ONLY = dict(distill_weight=0.0)
#: Distillation variants tried on seed 0; the best on validation is the "HFD-distilled student" of the table.
VARIANTS = {
    "feature_w1": ("HFD feature loss, weight 1", dict(distill_weight=1.0, distill_loss="feature")),
    "feature_w0.3": ("HFD feature loss, weight 0.3", dict(distill_weight=0.3, distill_loss="feature")),
    "affinity_w10": ("affinity loss, weight 10", dict(distill_weight=10.0, distill_loss="affinity")),
}
#: label -> (run name, changes to the chosen variant); a "model" change needs its own teacher (last).
ABLATIONS = {
    "distillation at the finest scale only": ("ablation_finest_scale", dict(distill_scales=(0,))),
    "logit distillation only (DisOptNet-style, T=2)": (
        "ablation_logit",
        dict(distill_weight=0.0, logit_distill_weight=1.0),
    ),
    "alignment off (teacher and student)": ("ablation_align_off", dict(model={"align": False})),
}
#: The three choices made on validation: candidate -> run name.
TEACHER_RUNS = {inputs: f"teacher_{inputs}" for inputs in INPUTS}
INPUT_RUNS = {inputs: f"sar_only_{inputs}_s0" for inputs in INPUTS}  # also the seed-0 SAR-only students
VARIANT_RUNS = {key: f"variant_{key}" for key in VARIANTS}
CHECKPOINT_STUDENTS = ("student_hfd", "student_sar_only")


def _steps(config: dict) -> int:
    return config["epochs"] * (config["samples_per_epoch"] // config["batch_size"])


def measure_step_seconds(out: Path, budget: dict) -> dict[str, float]:
    """Seconds per training step (8 windows of 128x128, 2 bands): the budget's network and the default one."""
    path = out / "timing.json"
    if path.is_file():
        return json.loads(path.read_text())
    timing = {}
    for label, model in (("the network used", budget["model"]), ("the default network", {})):
        network = HFDNet(HFDNetConfig(in_channels=2, num_classes=2, **model))
        optimizer = torch.optim.AdamW(network.parameters())
        x, y = torch.randn(8, 2, 128, 128), torch.randint(0, 2, (8, 128, 128))
        for step in range(4):
            if step == 1:  # the first step warms up
                start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(network(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        timing[label] = (time.perf_counter() - start) / 3
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timing))
    return timing


class Driver:
    """The experiment's plan; ``report`` rebuilds the document from whatever runs are finished."""

    def __init__(self, args: argparse.Namespace, data: Data | None):
        self.args, self.all_inputs = args, data
        self.runs = Runs(args.out, BUDGETS[args.budget], train_allowed=not args.report_only)
        self.otsu: dict[str, dict] = {}

    def _chosen(self, names: dict[str, str]) -> str | None:
        """The key of ``names`` (key -> run name) with the best validation mIoU, once all are finished."""
        if not all(self.runs.finished(name) for name in names.values()):
            return None
        return max(names, key=lambda key: self.runs.best_val_miou(names[key]))

    def teacher_inputs(self) -> str | None:
        return self._chosen(TEACHER_RUNS)

    def sar_inputs(self) -> str | None:
        return self._chosen(INPUT_RUNS)

    def variant(self) -> str | None:
        return self._chosen(VARIANT_RUNS)

    def teacher(self) -> Path:
        return self.runs.folder(TEACHER_RUNS[self.teacher_inputs()]) / "best.pt"

    def data(self, sar_inputs: str, eo_inputs: str = "after") -> Data:
        return self.all_inputs.view(sar_inputs, eo_inputs)

    def student_data(self) -> Data:
        return self.data(self.sar_inputs(), self.teacher_inputs())

    def planned(self) -> list[str]:
        names = [*TEACHER_RUNS.values(), *INPUT_RUNS.values(), *VARIANT_RUNS.values()]
        inputs = self.sar_inputs() or "<chosen>"
        for seed in SEEDS:
            names += [f"hfd_{inputs}_s{seed}", f"sar_only_{inputs}_s{seed}"]
        names = list(dict.fromkeys(names))
        if self.args.ablations:
            names += [name for name, _ in ABLATIONS.values()] + ["ablation_align_off_teacher"]
        return names

    def run(self) -> None:
        runs, schedule = self.runs, self.runs.budget["schedules"]
        for inputs, name in TEACHER_RUNS.items():
            runs.train(name, "teacher", self.data("after", inputs), **schedule["teacher"])
            self.report()
        for inputs, name in INPUT_RUNS.items():
            runs.train(name, "student", self.data(inputs), seed=0, **SAR_ONLY, **schedule["student"])
            self.report()
        if self.teacher_inputs() is None or self.sar_inputs() is None:
            return
        data, teacher, inputs = self.student_data(), self.teacher(), self.sar_inputs()
        for key, (_, changes) in VARIANTS.items():
            runs.train(VARIANT_RUNS[key], "student", data, teacher, seed=0, **changes, **schedule["student"])
            self.report()
        variant = self.variant()
        if variant is None:
            return
        for seed in SEEDS:
            hfd = f"hfd_{inputs}_s{seed}"
            if seed == 0 and not runs.folder(hfd).exists():  # the chosen variant's seed-0 run is that run
                shutil.copytree(runs.folder(VARIANT_RUNS[variant]), runs.folder(hfd))
            runs.train(
                hfd, "student", data, teacher, seed=seed, **VARIANTS[variant][1], **schedule["student"]
            )
            runs.train(
                f"sar_only_{inputs}_s{seed}", "student", data, seed=seed, **SAR_ONLY, **schedule["student"]
            )
            self.report()
        if self.args.ablations:
            for name, changes in ABLATIONS.values():
                self.train_ablation(name, data, {**VARIANTS[variant][1], **changes})
                self.report()

    def train_ablation(self, name: str, data: Data, changes: dict) -> bool:
        teacher, schedule = self.teacher(), self.runs.budget["schedules"]
        if "model" in changes:  # a student copies its teacher's architecture: it needs a matching teacher
            teacher_run = f"{name}_teacher"
            teacher_changes = {"model": changes["model"]}
            if not self.runs.train(teacher_run, "teacher", data, **schedule["teacher"], **teacher_changes):
                return False
            teacher = self.runs.folder(teacher_run) / "best.pt"
        return self.runs.train(name, "student", data, teacher, seed=0, **{**changes, **schedule["student"]})

    def students(self, kind: str, inputs: str) -> list[RunSummary]:
        names = [(seed, f"{kind}_{inputs}_s{seed}") for seed in SEEDS]
        test = self.data(inputs).test
        return [self.runs.summary(name, seed, test) for seed, name in names if self.runs.finished(name)]

    def choices(
        self, names: dict[str, str], test: Callable[[str], list[Scene]], labels: dict[str, str] | None = None
    ) -> list[Choice]:
        """The finished candidates of a choice (candidate -> run name), scored on ``test(candidate)``."""
        return [
            Choice(
                (labels or {}).get(key, key),
                self.runs.best_val_miou(name),
                self.runs.summary(name, 0, test(key)),
            )
            for key, name in names.items()
            if self.runs.finished(name)
        ]

    def experiment(self) -> Experiment:
        runs = self.runs
        inputs, teacher_inputs, variant = self.sar_inputs(), self.teacher_inputs(), self.variant()
        exp = Experiment(
            root=str(self.args.root),
            command=self.command(inputs),
            budget=BUDGETS[self.args.budget],
            seeds=SEEDS,
            validation=f"{round(VALIDATION_FRACTION * 100)} % of the training id blocks "
            "(10 consecutive ids each, "
            f"{len(self.all_inputs.val)} chips), the same for every run, never trained on",
            inputs=inputs,
            teacher_inputs=teacher_inputs,
            variant=VARIANTS[variant][0] if variant else None,
            timing=measure_step_seconds(self.args.out, BUDGETS[self.args.budget]),
            missing=[name for name in self.planned() if not runs.finished(name)],
        )
        exp.teacher_choice = self.choices(TEACHER_RUNS, lambda inputs: self.data("after", inputs).test)
        exp.sar_choice = self.choices(INPUT_RUNS, lambda inputs: self.data(inputs).test)
        if teacher_inputs is not None:
            exp.teacher = exp.teacher_choice[INPUTS.index(teacher_inputs)].run
        if inputs is not None and teacher_inputs is not None:
            test = self.student_data().test
            exp.variants = self.choices(VARIANT_RUNS, lambda _: test, {k: v[0] for k, v in VARIANTS.items()})
            exp.hfd, exp.sar_only = self.students("hfd", inputs), self.students("sar_only", inputs)
            if inputs not in self.otsu:
                self.otsu[inputs] = evaluate_otsu(self.data(inputs).test)
            exp.otsu = self.otsu[inputs]
            for label, (name, _) in ABLATIONS.items():
                if runs.finished(name):
                    exp.ablations.append((label, runs.summary(name, 0, test)))
        return exp

    def command(self, inputs: str | None) -> str:
        """The commands behind this page, and how to score its checkpoints with the command line."""
        script = shlex.join(["python", "scripts/ombria_experiment.py", "--root", str(self.args.root)])
        evaluate = f"python -m hfd_core evaluate --dataset ombria --root {self.args.root} --split test"
        lines = [
            f"make reproduce-ombria    # = {script}",
            "make ablate-ombria       # the same plus --ablations (one-seed ablation runs)",
            f"{script} --report-only    # rewrite this page from the finished runs",
        ]
        lines += [
            f"{evaluate} --model runs/ombria/{m}.pt --json {m}.json"
            for m in ("teacher", *CHECKPOINT_STUDENTS)
        ]
        return "\n".join(lines)

    def best_seed(self, runs: list[RunSummary]) -> RunSummary:
        return max(runs, key=lambda run: self.runs.best_val_miou(run.name))

    def report(self) -> None:
        """Rewrite the document, the plots and the chosen checkpoints from the finished runs."""
        exp, docs, out = self.experiment(), self.args.docs, self.args.out
        docs.mkdir(parents=True, exist_ok=True)
        chosen = {"teacher": self.teacher()} if exp.teacher else {}
        if exp.hfd:
            chosen["student_hfd"] = self.runs.folder(self.best_seed(exp.hfd).name) / "best.pt"
        if exp.sar_only:
            chosen["student_sar_only"] = self.runs.folder(self.best_seed(exp.sar_only).name) / "best.pt"
        for target, source in chosen.items():
            shutil.copyfile(source, out / f"{target}.pt")
        curves = {
            "teacher (S2)": [exp.teacher] if exp.teacher else [],
            "HFD student (S1)": exp.hfd,
            "SAR-only student (S1)": exp.sar_only,
        }
        histories = {
            label: [self.runs.done(r.name)["history"] for r in rs] for label, rs in curves.items() if rs
        }
        if histories:
            plot_curves(histories, docs / "ombria_val_curves.png")
        if exp.hfd and exp.sar_only:
            plot_examples(
                self.data(exp.inputs, exp.teacher_inputs).test,
                {"SAR-only": out / "student_sar_only.pt", "distilled": out / "student_hfd.pt"},
                docs / "ombria_examples.png",
            )
        (docs / "ombria.md").write_text(render(exp))
        log(f"wrote {docs / 'ombria.md'} ({len(exp.missing)} planned run(s) not finished)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder holding OmbriaS1/ and OmbriaS2/")
    parser.add_argument("--out", type=Path, default=Path("runs/ombria"), help="run folders and checkpoints")
    parser.add_argument("--docs", type=Path, default=Path("docs/experiments"), help="generated report folder")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="standard")
    parser.add_argument("--ablations", action="store_true", help="also the one-seed ablation runs")
    parser.add_argument("--report-only", action="store_true", help="train nothing; report finished runs")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of torch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log(f"reading OMBRIA from {args.root}")
    driver = Driver(args, load_data(args.root))
    if not args.report_only:
        driver.run()
    driver.report()


if __name__ == "__main__":
    main()
