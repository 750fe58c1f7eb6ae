"""Run folders of the OMBRIA experiments: the data split, the small network's budget, and training runs that
are reused when finished with the same settings and resumed from ``last.ckpt`` when cut."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from hfd_core.data import Scene, read_ombria, split_by_group
from hfd_core.modelfile import load_model
from hfd_core.models import HFDNetConfig
from hfd_core.train import TrainConfig, evaluate_model_file, train_student, train_teacher
from hfd_core.train.datasets import DATASETS
from ombria.report import RunSummary

VALIDATION_FRACTION = 0.15
SPLIT_SEED = 0
SPEC = DATASETS["ombria"]
SMALL_MODEL = {"widths": (16, 32, 48, 64), "align_dim": 32}


def budget(
    tile_size: int,
    batch_size: int,
    teacher: tuple[int, int],
    student: tuple[int, int],
) -> dict:
    """One network and optimiser; (epochs, windows per epoch) of the teacher and of every student."""
    return dict(
        batch_size=batch_size,
        lr=2e-3,
        tile_size=tile_size,
        model=SMALL_MODEL,
        schedules={
            "teacher": dict(epochs=teacher[0], samples_per_epoch=teacher[1]),
            "student": dict(epochs=student[0], samples_per_epoch=student[1]),
        },
    )


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
    "distill_loss",
    "logit_distill_weight",
    "pseudo_labels",
    "pseudo_label_confidence",
)


def _view(scene: Scene, sar_inputs: str, eo_inputs: str) -> Scene:
    """``scene`` (read with before and after) restricted to the given SAR and EO inputs (views, no copies)."""
    sar_keep = 1 if sar_inputs == "after" else len(scene.sar_bands)
    eo_keep = 3 if eo_inputs == "after" else len(scene.eo_bands)
    return replace(
        scene,
        sar=scene.sar[-sar_keep:],
        sar_bands=scene.sar_bands[-sar_keep:],
        eo=scene.eo[-eo_keep:],
        eo_bands=scene.eo_bands[-eo_keep:],
    )


@dataclass
class Data:
    train: list[Scene]
    val: list[Scene]
    test: list[Scene]

    def view(self, sar_inputs: str, eo_inputs: str) -> Data:
        """The same chips and split with the given SAR (student) and EO (teacher) inputs."""
        return Data(
            *([_view(s, sar_inputs, eo_inputs) for s in part] for part in (self.train, self.val, self.test))
        )


def load_data(root: Path) -> Data:
    """Before and after images; validation = whole id blocks carved from train."""
    train, val = split_by_group(
        read_ombria(root, "train", "before_after"), VALIDATION_FRACTION, seed=SPLIT_SEED
    )
    return Data(train, val, read_ombria(root, "test", "before_after"))


def _normalised(values: dict) -> dict:
    return json.loads(json.dumps({k: values.get(k) for k in COMPARED}))


class Runs:
    """Run folders ``<out>/runs/<name>``: train unless finished, evaluate on test once, read histories."""

    def __init__(self, out: Path, budget: dict, train_allowed: bool):
        self.out, self.budget, self.train_allowed = out, budget, train_allowed

    def folder(self, name: str) -> Path:
        return self.out / "runs" / name

    def claim(self, name: str) -> bool:
        """True when this process may train ``name``: not finished, and not claimed by another live process
        (claim files ``<out>/claims/<name>`` hold the claimer's pid; a dead claimer's claim is taken over)."""
        if self.finished(name):
            return False
        path = self.out / "claims" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = path.with_name(f"{name}.{os.getpid()}")
        mine.write_text(str(os.getpid()))
        try:
            for _ in range(2):
                try:
                    os.link(mine, path)  # atomic: the claim appears whole, or not at all
                    return True
                except FileExistsError:
                    owner = int(path.read_text())
                    if owner == os.getpid() or _alive(owner):
                        return owner == os.getpid()
                    path.unlink(missing_ok=True)  # its process died: take the run over (it resumes)
            return False
        finally:
            mine.unlink()

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
        built = metadata.config
        architecture = HFDNetConfig(built.in_channels, built.num_classes, **config.model)
        if built != architecture:  # e.g. saved before offsets were bounded
            differs["architecture"] = (built.to_dict(), architecture.to_dict())
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
