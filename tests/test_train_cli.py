"""`python -m hfd_core train-teacher / train-student` on a registered toy dataset."""

from __future__ import annotations

import json

import pytest
from test_train_fixtures import toy_scenes

from hfd_core.cli import main
from hfd_core.errors import InputError
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
    assert "ignored, the student takes its teacher's architecture" in capsys.readouterr().err
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
        main(["train-teacher", *toy_dataset, "--out", str(tmp_path / "t2"), "--leave-out", "nowhere", *TINY])


def test_a_finished_run_is_not_overwritten_and_resumes_only_as_itself(tmp_path, toy_dataset, capsys):
    """Training into a run folder without --resume replaced best.pt, last.ckpt and history.json silently;
    --resume with other settings mixed two runs in one history. Both are refused before any work."""
    out = tmp_path / "teacher"
    assert main(["train-teacher", *toy_dataset, "--out", str(out), *TINY]) == 0
    assert "epoch 1/1: train loss" not in capsys.readouterr().err  # --quiet
    before = {name: (out / name).read_bytes() for name in ("best.pt", "last.ckpt", "history.json")}
    with pytest.raises(InputError, match="already holds a run .*add --resume"):
        main(["train-teacher", *toy_dataset, "--out", str(out), *TINY])
    tiny_tile = [*TINY[:5], "32", *TINY[6:]]  # --tile-size 32 instead of 16
    with pytest.raises(InputError, match=r"other settings \(tile_size 16 -> 32\)"):
        main(["train-teacher", *toy_dataset, "--out", str(out), "--resume", *tiny_tile])
    assert before == {name: (out / name).read_bytes() for name in before}
    more = [*TINY[:1], "2", *TINY[2:]]  # --epochs 2: going on is what --resume is for
    assert main(["train-teacher", *toy_dataset, "--out", str(out), "--resume", *more]) == 0
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]


def test_user_errors_found_before_the_data_is_read(tmp_path, toy_dataset, monkeypatch):
    """A tile size the network cannot halve four times, three widths, a file as --out, a student without
    its teacher: each was a traceback or a late error after the whole dataset had loaded."""
    monkeypatch.setitem(DATASETS, "toy", DatasetSpec("toy", lambda root, split: pytest.fail("data read")))
    (tmp_path / "file").write_text("")
    cases = {
        "multiple of 16": ["--out", str(tmp_path / "a"), *TINY[:5], "24", *TINY[6:]],
        "--widths needs 4 numbers": ["--out", str(tmp_path / "b"), *TINY[:11], "--align-dim", "8"],
        "is a file": ["--out", str(tmp_path / "file"), *TINY],
    }
    for message, options in cases.items():
        with pytest.raises(InputError, match=message):
            main(["train-teacher", *toy_dataset, *options])
    with pytest.raises(InputError, match="give --teacher, or --no-distill"):
        main(["train-student", *toy_dataset, "--out", str(tmp_path / "s"), *TINY])


def test_fewer_samples_than_a_batch_names_the_option(tmp_path, toy_dataset):
    """The message named the config field (`samples_per_epoch`), which a command-line user never typed."""
    options = [*TINY, "--samples-per-epoch", "2"]  # the last value counts
    with pytest.raises(InputError, match=r"2 samples per epoch \(--samples-per-epoch\).*4 x 1"):
        main(["train-teacher", *toy_dataset, "--out", str(tmp_path / "t"), *options])


def test_labels_all_nodata_or_tiles_larger_than_every_scene_are_refused(tmp_path, monkeypatch):
    """A folder whose labels are all nodata trained "successfully" (loss 0, a meaningless best.pt); a tile
    larger than every scene trained on padding."""
    scenes = toy_scenes(8)
    for scene in scenes:
        scene.label[:] = 255
    monkeypatch.setitem(DATASETS, "blank", DatasetSpec("blank", lambda root, split: scenes))
    with pytest.raises(InputError, match="has a labelled pixel"):
        main(
            [
                "train-teacher",
                "--dataset",
                "blank",
                "--root",
                str(tmp_path),
                "--out",
                str(tmp_path / "a"),
                *TINY,
            ]
        )
    assert not (tmp_path / "a" / "best.pt").exists()
    small = toy_scenes(8)
    monkeypatch.setitem(DATASETS, "small", DatasetSpec("small", lambda root, split: small))
    rows, cols = small[0].shape
    big = [*TINY[:5], str((max(rows, cols) // 16 + 1) * 16), *TINY[6:]]
    with pytest.raises(InputError, match="larger than every training scene"):
        main(
            [
                "train-teacher",
                "--dataset",
                "small",
                "--root",
                str(tmp_path),
                "--out",
                str(tmp_path / "b"),
                *big,
            ]
        )


def test_the_seed_draws_other_training_windows():
    """`--seed` changed the initial weights and batch order but not the random windows (the tile dataset kept
    seed 0), so seed rows differed less than they seemed."""
    from hfd_core.data.normalization import compute_band_stats
    from hfd_core.train.api import _tiles
    from hfd_core.train.config import TrainConfig

    scenes = toy_scenes(4)
    stats = compute_band_stats([scene.eo for scene in scenes])
    windows = []
    for seed in (0, 1):
        tiles = _tiles(scenes, TrainConfig(tile_size=16, samples_per_epoch=8, seed=seed), None, stats, True)
        tiles.set_epoch(1)
        windows.append([tiles[i]["eo"].sum().item() for i in range(8)])
    assert windows[0] != windows[1]


def test_each_epoch_prints_its_validation_score_and_no_bar_into_a_log(tmp_path, toy_dataset, capsys):
    """The bar showed only the training loss (validation came in the table after the last epoch) and, in a
    log redirected from a terminal, wrote one line per step."""
    loud = [option for option in TINY if option != "--quiet"]
    assert main(["train-teacher", *toy_dataset, "--out", str(tmp_path / "t"), *loud]) == 0
    err = capsys.readouterr().err
    assert "epoch 1/1: train loss" in err and "val mIoU" in err and "it/s" not in err


def test_a_damaged_checkpoint_and_an_unwritable_json_are_one_line_errors(tmp_path, toy_dataset):
    """A damaged last.ckpt gave torch's message, advice to load it unsafely included; `evaluate --json
    <folder>` failed only after scoring."""
    out = tmp_path / "teacher"
    assert main(["train-teacher", *toy_dataset, "--out", str(out), *TINY]) == 0
    (out / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="damaged or not a checkpoint") as error:
        main(["train-teacher", *toy_dataset, "--out", str(out), "--resume", *TINY])
    assert "weights_only" not in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(InputError, match="is a folder"):
        main(["evaluate", *toy_dataset, "--model", str(out / "best.pt"), "--json", str(tmp_path)])
