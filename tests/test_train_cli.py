"""`python -m hfd_core train-teacher / train-student` on a registered toy dataset."""

from __future__ import annotations

import pytest
from test_train_fixtures import toy_scenes

from hfd_core.cli import main
from hfd_core.modelfile import load_model
from hfd_core.train.datasets import DATASETS, DatasetSpec, load_scenes

TINY = [
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--tile-size",
    "16",
    "--samples-per-epoch",
    "8",
    "--widths",
    "4",
    "8",
    "8",
    "8",
    "--align-dim",
    "8",
    "--device",
    "cpu",
    "--quiet",
    "--val-fraction",
    "0.25",
]


@pytest.fixture
def toy_dataset(monkeypatch, tmp_path):
    scenes = toy_scenes(8)
    monkeypatch.setitem(DATASETS, "toy", DatasetSpec("toy", lambda root, split: scenes))
    return ["--dataset", "toy", "--root", str(tmp_path)]


def test_teacher_then_students_from_the_command_line(tmp_path, toy_dataset, capsys):
    assert main(["train-teacher", *toy_dataset, "--out", str(tmp_path / "teacher"), *TINY]) == 0
    assert "val mIoU" in capsys.readouterr().out
    teacher = tmp_path / "teacher" / "best.pt"
    assert (
        main(
            [
                "train-student",
                *toy_dataset,
                "--out",
                str(tmp_path / "hfd"),
                "--teacher",
                str(teacher),
                "--distill-weight",
                "2",
                "--distill-scales",
                "0",
                "1",
                *TINY,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train-student",
                *toy_dataset,
                "--out",
                str(tmp_path / "sar"),
                "--teacher",
                str(teacher),
                "--no-distill",
                *TINY,
            ]
        )
        == 0
    )
    _, distilled = load_model(tmp_path / "hfd" / "best.pt")
    _, baseline = load_model(tmp_path / "sar" / "best.pt")
    assert distilled.training["config"]["distill_weight"] == 2.0
    assert distilled.training["config"]["distill_scales"] == [0, 1]
    assert baseline.training["config"]["distill_weight"] == 0.0 and "teacher" not in baseline.training
    assert baseline.config == distilled.config
    assert distilled.training["val_groups"] == baseline.training["val_groups"]


def test_split_without_official_test_holds_out_whole_groups(toy_dataset, tmp_path):
    train = load_scenes("toy", tmp_path, "train")
    test = load_scenes("toy", tmp_path, "test")
    assert test and train and not {s.group for s in train} & {s.group for s in test}
    assert len(train) + len(test) == len(load_scenes("toy", tmp_path, "all"))


def test_leave_out_keeps_a_location_out_of_training_and_validation(tmp_path, toy_dataset):
    groups = {scene.group for scene in load_scenes("toy", tmp_path, "train")}
    left_out = sorted(groups)[0]
    out = tmp_path / "teacher"
    assert main(["train-teacher", *toy_dataset, "--out", str(out), "--leave-out", left_out, *TINY]) == 0
    _, metadata = load_model(out / "best.pt")
    data = metadata.training["data"] if "data" in metadata.training else metadata.training
    assert set(data["train_groups"]) | set(data["val_groups"]) == groups - {left_out}
    with pytest.raises(Exception, match="no group nowhere"):
        main(["train-teacher", *toy_dataset, "--out", str(out), "--leave-out", "nowhere", *TINY])
