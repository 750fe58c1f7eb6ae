"""OMBRIA: does distillation from an EO teacher help a SAR student? (issue 8)

    python scripts/ombria_experiment.py --root ../shared/data/ombria [--ablations] [--report-only]

Runs, on a small CPU budget (``BUDGETS``: one network, a schedule per role) and resumable (a finished run
folder is reused after checking that it was trained with the same settings; an unfinished one resumes from
its ``last.ckpt``):
1. the teacher on Sentinel-2 (after image, B11/B8/B3 false colour), trained once on a longer schedule;
2. SAR input choice on the validation split carved from train by id blocks: short SAR-only runs on the after
   image and on before+after stacked, seed 0; the better validation mIoU is used below;
3. HFD-distilled and SAR-only students (distill weight 0, no teacher), seeds 0, 1, 2, everything else equal
   (same schedule, seed, network);
4. evaluation of every model and of Otsu thresholding on the official test split (per-chip mIoU as in the
   OmbriaNet notebook, pooled mIoU, OA, kappa);
5. ``docs/experiments/ombria.md`` (tables generated here, rewritten after every finished run so a cut session
   leaves a partial table), a validation-curve plot and example predictions; the chosen checkpoints are
   copied to ``runs/ombria/{teacher,student_hfd,student_sar_only}.pt``.
``--ablations`` adds one-seed runs (alignment off, distillation at one scale, distillation weights, logit
distillation) to the same document. ``--report-only`` trains nothing and writes the document from the runs
already finished.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from ombria.baseline import evaluate_otsu
from ombria.plots import plot_curves, plot_examples
from ombria.report import Experiment, RunSummary, TeacherVariant, render

from hfd_core.data import Scene, read_ombria, split_by_group
from hfd_core.modelfile import load_model
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.train import TrainConfig, evaluate_model_file, train_student, train_teacher
from hfd_core.train.datasets import DATASETS

SEEDS = (0, 1, 2)
INPUTS = ("after", "before_after")
VALIDATION_FRACTION = 0.15
SPLIT_SEED = 0
SMALL_MODEL = {"widths": (16, 32, 48, 64), "align_dim": 32}


def _budget(
    tile_size: int,
    batch_size: int,
    teacher: tuple[int, int],
    student: tuple[int, int],
    choice: tuple[int, int] = (5, 192),
) -> dict:
    """One network and optimiser; (epochs, windows per epoch) of the teacher, every compared student and the
    input-choice runs."""
    return dict(
        batch_size=batch_size,
        lr=2e-3,
        tile_size=tile_size,
        model=SMALL_MODEL,
        schedules={
            "teacher": dict(epochs=teacher[0], samples_per_epoch=teacher[1]),
            "student": dict(epochs=student[0], samples_per_epoch=student[1]),
            "choice": dict(epochs=choice[0], samples_per_epoch=choice[1]),
        },
    )


#: "standard": the reproduce target (about half an hour on 2 free CPU cores, longer when they are shared);
#: "quick": the earlier, 5x shorter students; "smoke": checks the driver end to end in minutes.
#: The input-choice runs are short SAR-only runs in every budget.
BUDGETS = {
    "standard": _budget(128, 8, teacher=(12, 640), student=(6, 320)),
    "quick": _budget(128, 8, teacher=(8, 480), student=(5, 192)),
    "smoke": _budget(64, 4, teacher=(1, 8), student=(1, 8), choice=(1, 8)),
}
#: Settings that must match for a finished run folder to be reused.
COMPARED = (
    "epochs",
    "batch_size",
    "lr",
    "tile_size",
    "samples_per_epoch",
    "model",
    "seed",
    "distill_weight",
    "distill_scales",
    "logit_distill_weight",
)
DISTILLED = dict(distill_weight=1.0)
SAR_ONLY = dict(distill_weight=0.0)
#: label -> (run name, changes to the distilled student); a "model" change needs its own teacher (last).
ABLATIONS = {
    "distillation at the finest scale only": ("ablation_finest_scale", dict(distill_scales=(0,))),
    "distillation weight 0.3": ("ablation_weight_0.3", dict(distill_weight=0.3)),
    "distillation weight 3": ("ablation_weight_3", dict(distill_weight=3.0)),
    "logit distillation only (DisOptNet-style, T=2)": (
        "ablation_logit",
        dict(distill_weight=0.0, logit_distill_weight=1.0),
    ),
    "alignment off (teacher and student)": ("ablation_align_off", dict(model={"align": False})),
}
SPEC = DATASETS["ombria"]
CHECKPOINT_STUDENTS = ("student_hfd", "student_sar_only")


def scenes(root: Path, split: str, inputs: str) -> list[Scene]:
    """OMBRIA scenes whose SAR is ``inputs`` and whose EO is the S2 after image (the teacher's input)."""
    result = read_ombria(root, split, inputs=inputs)
    for scene in result:
        scene.eo, scene.eo_bands = scene.eo[-3:], scene.eo_bands[-3:]
    return result


@dataclass
class Data:
    train: list[Scene]
    val: list[Scene]
    test: list[Scene]


def load_data(root: Path) -> dict[str, Data]:
    """Both SAR inputs; validation = whole id blocks carved from train, the same blocks for both."""
    data = {}
    for inputs in INPUTS:
        train, val = split_by_group(scenes(root, "train", inputs), VALIDATION_FRACTION, seed=SPLIT_SEED)
        data[inputs] = Data(train, val, scenes(root, "test", inputs))
    return data


def _normalised(values: dict) -> dict:
    return json.loads(json.dumps({k: values.get(k) for k in COMPARED}))


class Runs:
    """Run folders ``<out>/runs/<name>``: train unless finished, evaluate on test once, read histories."""

    def __init__(self, out: Path, budget: dict, train_allowed: bool):
        self.out, self.budget, self.train_allowed = out, budget, train_allowed

    def folder(self, name: str) -> Path:
        return self.out / "runs" / name

    def finished(self, name: str) -> bool:
        return (self.folder(name) / "done.json").is_file() and (self.folder(name) / "best.pt").is_file()

    def config(self, name: str, changes: dict) -> TrainConfig:
        model = {**self.budget["model"], **changes.get("model", {})}
        base = {k: v for k, v in self.budget.items() if k != "schedules"}
        settings = {**base, **changes, "model": model}
        return TrainConfig(
            out_dir=str(self.folder(name)), resume=True, device="auto", progress=False, **settings
        )

    def _check_reusable(self, name: str, config: TrainConfig, teacher: Path | None) -> None:
        """Exit when the finished run ``name`` was trained with other settings or from another teacher."""
        _, metadata = load_model(self.folder(name) / "best.pt")
        trained = _normalised(metadata.training.get("config", {}))
        wanted = _normalised(config.to_dict())
        differs = {k: (trained[k], wanted[k]) for k in COMPARED if trained[k] != wanted[k]}
        used = metadata.training.get("teacher")
        wanted_teacher = teacher if config.distill_weight > 0 or config.logit_distill_weight > 0 else None
        if (used and Path(used).resolve()) != (wanted_teacher and Path(wanted_teacher).resolve()):
            differs["teacher"] = (used, str(wanted_teacher))
        if differs:
            sys.exit(f"{self.folder(name)} was trained with other settings {differs}; use another --out")

    def train(self, name: str, role: str, data: Data, teacher: Path | None = None, **changes) -> bool:
        """Train ``name`` unless it is finished; False when it is not finished and training is not allowed."""
        config = self.config(name, changes)
        if self.finished(name):
            self._check_reusable(name, config, teacher)
            return True
        if not self.train_allowed:
            return False
        log(f"training {name}")
        start = time.perf_counter()
        if role == "teacher":
            result = train_teacher(data.train, data.val, config, spec=SPEC)
        else:
            result = train_student(data.train, data.val, teacher, config, spec=SPEC)
        seconds = time.perf_counter() - start
        done = {"best_epoch": result.best_epoch, "seconds": seconds, "history": result.history}
        (self.folder(name) / "done.json").write_text(json.dumps(done))
        log(f"finished {name} in {seconds / 60:.1f} min, best epoch {result.best_epoch}")
        return True

    def done(self, name: str) -> dict:
        return json.loads((self.folder(name) / "done.json").read_text())

    def best_val_miou(self, name: str) -> float:
        return max(row["val_miou"] for row in self.done(name)["history"])

    def summary(self, name: str, seed: int, test: list[Scene]) -> RunSummary:
        """The run's test scores (computed once, cached in ``test.json``)."""
        path = self.folder(name) / "test.json"
        if not path.is_file():
            report = evaluate_model_file(self.folder(name) / "best.pt", test, device="auto")
            path.write_text(json.dumps(report, indent=1))
        done = self.done(name)
        return RunSummary(name, seed, done["best_epoch"], json.loads(path.read_text()), done.get("seconds"))


def _steps(config: dict) -> int:
    return config["epochs"] * (config["samples_per_epoch"] // config["batch_size"])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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

    def __init__(self, args: argparse.Namespace, data: dict[str, Data]):
        self.args, self.data = args, data
        self.runs = Runs(args.out, BUDGETS[args.budget], train_allowed=not args.report_only)
        self.teacher = self.runs.folder("teacher") / "best.pt"
        self.otsu: dict[str, dict] = {}

    def chosen_inputs(self) -> str | None:
        if not all(self.runs.finished(f"choice_{inputs}") for inputs in INPUTS):
            return None
        return max(INPUTS, key=lambda inputs: self.runs.best_val_miou(f"choice_{inputs}"))

    def planned(self) -> list[str]:
        names = ["teacher", *(f"choice_{inputs}" for inputs in INPUTS)]
        inputs = self.chosen_inputs() or "<chosen>"
        for seed in SEEDS:
            names += [f"hfd_{inputs}_s{seed}", f"sar_only_{inputs}_s{seed}"]
        if self.args.ablations:
            names += [name for name, _ in ABLATIONS.values()] + ["ablation_align_off_teacher"]
        return list(dict.fromkeys(names))

    def run(self) -> None:
        runs, schedule = self.runs, self.runs.budget["schedules"]
        runs.train("teacher", "teacher", self.data["after"], **schedule["teacher"])
        self.report()
        for inputs in INPUTS:
            runs.train(
                f"choice_{inputs}", "student", self.data[inputs], seed=0, **SAR_ONLY, **schedule["choice"]
            )
            self.report()
        inputs = self.chosen_inputs()
        if inputs is None:
            return
        for seed in SEEDS:
            for name, changes in (
                (f"hfd_{inputs}_s{seed}", DISTILLED),
                (f"sar_only_{inputs}_s{seed}", SAR_ONLY),
            ):
                teacher = self.teacher if changes is DISTILLED else None
                runs.train(
                    name, "student", self.data[inputs], teacher, seed=seed, **changes, **schedule["student"]
                )
                self.report()
        if self.args.ablations:
            for name, changes in ABLATIONS.values():
                self.train_ablation(name, self.data[inputs], changes)
                self.report()

    def train_ablation(self, name: str, data: Data, changes: dict) -> bool:
        teacher, schedule = self.teacher, self.runs.budget["schedules"]
        if "model" in changes:  # a student copies its teacher's architecture: it needs a matching teacher
            teacher_run = f"{name}_teacher"
            if not self.runs.train(
                teacher_run, "teacher", self.data["after"], **schedule["teacher"], **changes
            ):
                return False
            teacher = self.runs.folder(teacher_run) / "best.pt"
        return self.runs.train(
            name, "student", data, teacher, seed=0, **{**DISTILLED, **changes, **schedule["student"]}
        )

    def students(self, kind: str, inputs: str, runs: Runs | None = None) -> list[RunSummary]:
        runs = runs or self.runs
        names = [(seed, f"{kind}_{inputs}_s{seed}") for seed in SEEDS]
        test = self.data[inputs].test
        return [runs.summary(name, seed, test) for seed, name in names if runs.finished(name)]

    def teacher_variant(self, runs: Runs, inputs: str) -> TeacherVariant | None:
        """The teacher of the run folder ``runs`` and the students trained there (None without a teacher)."""
        if not runs.finished("teacher") or not (
            self.students("hfd", inputs, runs) or self.students("sar_only", inputs, runs)
        ):
            return None
        _, metadata = load_model(runs.folder("teacher") / "best.pt")
        config = metadata.training["config"]
        students = [*self.students("hfd", inputs, runs), *self.students("sar_only", inputs, runs)]
        student_config = load_model(runs.folder(students[0].name) / "best.pt")[1].training["config"]
        return TeacherVariant(
            folder=str(runs.out),
            steps=_steps(config),
            student_steps=_steps(student_config),
            teacher=runs.summary("teacher", 0, self.data["after"].test),
            hfd=self.students("hfd", inputs, runs),
            sar_only=self.students("sar_only", inputs, runs),
        )

    def experiment(self) -> Experiment:
        runs, inputs = self.runs, self.chosen_inputs()
        exp = Experiment(
            root=str(self.args.root),
            command=self.command(inputs),
            budget=BUDGETS[self.args.budget],
            seeds=SEEDS,
            validation=f"{round(VALIDATION_FRACTION * 100)} % of the training id blocks "
            "(10 consecutive ids each, "
            f"{len(self.data['after'].val)} chips), the same for every run, never trained on",
            inputs=inputs,
            timing=measure_step_seconds(self.args.out, BUDGETS[self.args.budget]),
            missing=[name for name in self.planned() if not runs.finished(name)],
        )
        for choice in INPUTS:
            name = f"choice_{choice}"
            if runs.finished(name):
                exp.choice[choice] = runs.best_val_miou(name)
                exp.choice_test[choice] = runs.summary(name, 0, self.data[choice].test).test
        if runs.finished("teacher"):
            exp.teacher = runs.summary("teacher", 0, self.data["after"].test)
        if inputs is not None:
            exp.hfd, exp.sar_only = self.students("hfd", inputs), self.students("sar_only", inputs)
            if inputs not in self.otsu:
                self.otsu[inputs] = evaluate_otsu(self.data[inputs].test)
            exp.otsu = self.otsu[inputs]
            folders = [self.args.out, *self.args.previous]
            variants = [self.teacher_variant(Runs(f, runs.budget, False), inputs) for f in folders]
            exp.teacher_variants = [v for v in variants if v is not None]
            for label, (name, _) in ABLATIONS.items():
                if runs.finished(name):
                    exp.ablations.append((label, runs.summary(name, 0, self.data[inputs].test)))
        return exp

    def command(self, inputs: str | None) -> str:
        """The commands behind this page, and how to score its checkpoints with the command line."""
        script = shlex.join(["python", "scripts/ombria_experiment.py", "--root", str(self.args.root)])
        previous = " --previous " + " ".join(map(str, self.args.previous)) if self.args.previous else ""
        evaluate = f"python -m hfd_core evaluate --dataset ombria --root {self.args.root} --split test"
        lines = [
            f"make reproduce-ombria    # = {script}",
            "make ablate-ombria       # the same plus --ablations (one-seed ablation runs)",
            f"{script} --report-only{previous}    # rewrite this page from the finished runs",
            f"{evaluate} --model runs/ombria/teacher.pt --json teacher.json",
        ]
        if inputs == "after":
            lines += [f"{evaluate} --model runs/ombria/{m}.pt --json {m}.json" for m in CHECKPOINT_STUDENTS]
        else:
            lines.append(
                "# the students read before+after stacked SAR; `evaluate --dataset ombria` reads the"
                " after image only, so their scores come from this script"
            )
        return "\n".join(lines)

    def best_seed(self, runs: list[RunSummary]) -> RunSummary:
        return max(runs, key=lambda run: self.runs.best_val_miou(run.name))

    def report(self) -> None:
        """Rewrite the document, the plots and the chosen checkpoints from the finished runs."""
        exp, docs, out = self.experiment(), self.args.docs, self.args.out
        docs.mkdir(parents=True, exist_ok=True)
        chosen = {"teacher": self.runs.folder("teacher") / "best.pt"} if exp.teacher else {}
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
                self.data[exp.inputs].test,
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
    parser.add_argument(
        "--previous",
        type=Path,
        nargs="+",
        default=[],
        help="earlier --out folders of this script (other budgets) to compare with",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log(f"reading OMBRIA from {args.root}")
    driver = Driver(args, load_data(args.root))
    if not args.report_only:
        driver.run()
    driver.report()


if __name__ == "__main__":
    main()
