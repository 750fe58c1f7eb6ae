"""The OMBRIA experiment driver (scripts/ombria_experiment.py): Otsu baseline, report tables, run reuse.

Tiny fake scenes and hand-made reports only; no training.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from hfd_core.data import Scene
from hfd_core.modelfile import ClassInfo, ModelMetadata, save_model
from hfd_core.models import HFDNet, HFDNetConfig
from hfd_core.train import TrainConfig

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
baseline = importlib.import_module("ombria.baseline")
report = importlib.import_module("ombria.report")
plots = importlib.import_module("ombria.plots")
driver = importlib.import_module("ombria_experiment")


def _scene(name: str, sar_after: np.ndarray, label: np.ndarray) -> Scene:
    eo = np.zeros((3, *label.shape), np.uint8)
    return Scene(name, "g", sar_after[None].astype(np.uint8), eo, label.astype(np.uint8), ["VV_after"], [])


def _bimodal(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Dark left half (water, 30) and bright right half (land, 200) with a little noise; label = left half."""
    rng = np.random.default_rng(0)
    image = np.where(np.arange(size)[None, :] < size // 2, 30, 200) + rng.integers(-10, 10, (size, size))
    label = np.zeros((size, size), np.uint8)
    label[:, : size // 2] = 1
    return image.astype(np.uint8), label


def _report(per_chip: float, miou: float = 0.5, oa: float = 0.9, kappa: float = 0.4) -> dict:
    return {"per_chip_miou": per_chip, "miou": miou, "oa": oa, "kappa": kappa, "num_scenes": 70}


def _run(kind: str, seed: int, per_chip: float) -> report.RunSummary:
    return report.RunSummary(f"{kind}_after_s{seed}", seed, 3, _report(per_chip), seconds=120.0)


def _experiment(**changes) -> report.Experiment:
    values = dict(
        root="../shared/data/ombria",
        command="make reproduce-ombria",
        budget=driver.BUDGETS["quick"],
        seeds=(0, 1, 2),
        validation="15 % of the id blocks",
        inputs="after",
        teacher_inputs="before_after",
        variant="affinity loss, weight 1",
        teacher_choice=[
            report.Choice("after", 0.60, report.RunSummary("teacher_after", 0, 4, _report(0.61))),
            report.Choice(
                "before_after", 0.63, report.RunSummary("teacher_before_after", 0, 4, _report(0.62))
            ),
        ],
        sar_choice=[
            report.Choice("after", 0.55, report.RunSummary("choice_after", 0, 2, _report(0.58))),
            report.Choice(
                "before_after", 0.53, report.RunSummary("choice_before_after", 0, 2, _report(0.57))
            ),
        ],
        variants=[
            report.Choice("HFD feature loss, weight 1", 0.56, _run("variant_feature_w1", 0, 0.59)),
            report.Choice("affinity loss, weight 1", 0.58, _run("variant_affinity_w1", 0, 0.60)),
        ],
        teacher=report.RunSummary("teacher_before_after", 0, 4, _report(0.62)),
        hfd=[_run("hfd", s, v) for s, v in enumerate((0.60, 0.62, 0.61))],
        sar_only=[_run("sar_only", s, v) for s, v in enumerate((0.55, 0.56, 0.57))],
        otsu=_report(0.57),
        timing={"the network used": 0.8},
    )
    return report.Experiment(**{**values, **changes})


def test_otsu_marks_the_dark_mode_as_flood():
    image, label = _bimodal()
    assert np.array_equal(baseline.otsu_flood_map(image), label)


def test_otsu_on_a_flat_chip_predicts_no_flood():
    assert not baseline.otsu_flood_map(np.full((8, 8), 90, np.uint8)).any()


def test_evaluate_otsu_per_chip_protocol():
    image, label = _bimodal()
    scores = baseline.evaluate_otsu([_scene("a", image, label), _scene("b", image, 1 - label)])
    assert scores["num_scenes"] == 2
    assert scores["per_chip_miou"] == pytest.approx(0.5)  # chip a perfect (1), chip b all wrong (0)
    assert scores["oa"] == pytest.approx(0.5)
    assert scores["kappa"] == pytest.approx(0.0)


def test_mean_std_formats_one_several_and_no_values():
    assert report.mean_std([0.5]) == "0.500"
    assert report.mean_std([0.5, 0.7]) == "0.600 ± 0.141"
    assert report.mean_std([]) == "-"


def test_results_table_has_anchors_and_our_rows_with_seed_spread():
    table = report.results_table(_experiment())
    for label, value in report.ANCHORS:
        assert f"| {label} | - | {value:.3f} |" in table
    assert (
        "| HFD-distilled student (affinity loss, weight 1), S1 after (ours) | 0, 1, 2 | 0.610 ± 0.010 |"
        in table
    )
    assert "| Teacher, S2 before_after (ours; EO at test time) | 0 | 0.620 |" in table
    assert "| SAR-only student, S1 after (ours) | 0, 1, 2 | 0.560 ± 0.010 |" in table
    assert "| Otsu threshold, S1 after (ours) | - | 0.570 |" in table


def test_paired_gaps_pair_runs_by_seed():
    hfd = [_run("hfd", 0, 0.6), _run("hfd", 2, 0.5)]
    sar = [_run("sar_only", 0, 0.55), _run("sar_only", 1, 0.9)]
    assert report.paired_gaps(hfd, sar) == {0: pytest.approx(0.05)}


@pytest.mark.parametrize(
    ("gaps", "spread", "word"),
    [
        ({0: 0.05, 1: 0.04, 2: 0.06}, 0.01, "helps"),
        ({0: -0.05, 1: -0.04, 2: -0.06}, 0.01, "hurts"),
        ({0: 0.05, 1: -0.04, 2: 0.01}, 0.01, "no effect beyond seed noise"),
        ({0: 0.02, 1: 0.01, 2: 0.03}, 0.05, "no effect beyond seed noise"),
        ({}, 0.0, "cannot be judged"),
    ],
)
def test_verdict(gaps, spread, word):
    assert word in report.verdict(gaps, spread)


def test_reading_compares_with_otsu_and_the_fusion_anchor():
    text = "\n".join(report.reading(_experiment()))
    assert "Distillation helps" in text
    assert "distilled student (0.610) is above Otsu" in text
    assert "SAR-only student (0.560) is below Otsu" in text
    assert "0.705" in text


def test_render_complete_document():
    text = report.render(_experiment())
    assert "Partial" not in text
    assert "Ablations" not in text
    assert "| after | 0.550 | 0.580 | 0.500 |" in text and "| before_after | 0.630 | 0.620 | 0.500 |" in text
    assert "| affinity loss, weight 1 | 0.580 | 0.600 | 0.500 |" in text
    assert "Chosen: **after**" in text and "Chosen: **before_after**" in text
    assert "Chosen: **affinity loss, weight 1**" in text
    assert "random 128x128 windows" in text
    assert (
        "teacher 8 epochs x 480 windows = 480 steps; each student 5 epochs x 192 windows = 120 steps" in text
    )
    assert "make reproduce-ombria" in text and "ombria_examples.png" in text


def test_render_partial_document_names_missing_runs_and_shows_ablations():
    exp = _experiment(
        hfd=[_run("hfd", 0, 0.6)],
        sar_only=[],
        missing=["sar_only_after_s0"],
        ablations=[("distillation weight 3", _run("ablation_weight_3", 0, 0.58))],
    )
    text = report.render(exp)
    assert "Partial: 1 run(s) not finished yet (sar_only_after_s0)" in text
    assert "SAR-only student" not in report.results_table(exp)
    assert "| distillation weight 3 | 0.580 |" in text


def test_example_scenes_prefer_partly_flooded_chips():
    label = np.zeros((10, 10), np.uint8)
    chips = []
    for name, flooded_rows in (("dry", 0), ("half", 4), ("full", 10), ("some", 3)):
        mask = label.copy()
        mask[:flooded_rows] = 1
        chips.append(_scene(name, mask * 50, mask))
    assert [s.name for s in plots.example_scenes(chips, 2)] == ["half", "some"]


def test_plot_curves_writes_a_png(tmp_path):
    history = [{"epoch": 1, "val_miou": 0.4}, {"epoch": 2, "val_miou": 0.5}]
    plots.plot_curves({"teacher": [history], "student": [history, history]}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def _finished_run(runs, name: str, config: TrainConfig, teacher: str, **architecture) -> None:
    folder = runs.folder(name)
    folder.mkdir(parents=True)
    net_config = HFDNetConfig(in_channels=1, num_classes=2, **{**config.model, **architecture})
    metadata = ModelMetadata(
        role="student",
        config=net_config,
        bands=["VV_after"],
        input_kind="ombria_png",
        mean=[0.0],
        std=[1.0],
        classes=[ClassInfo(0, "not flooded", "#d9d9d9"), ClassInfo(1, "flood", "#2e86de")],
        training={"config": config.to_dict(), "teacher": teacher},
    )
    save_model(folder / "best.pt", HFDNet(net_config), metadata)
    (folder / "done.json").write_text('{"best_epoch": 1, "history": []}')


def test_finished_run_is_reused_only_with_the_same_settings(tmp_path):
    runs = driver.Runs(tmp_path, driver.BUDGETS["smoke"], train_allowed=False)
    name, settings = "hfd_after_s0", dict(seed=0, distill_weight=1.0, epochs=1)
    _finished_run(runs, name, runs.config(name, settings), teacher="t/best.pt")
    assert runs.train(name, "student", None, Path("t/best.pt"), **settings)
    with pytest.raises(SystemExit, match="other settings"):
        runs.train(name, "student", None, Path("t/best.pt"), **{**settings, "seed": 1})
    with pytest.raises(SystemExit, match="teacher"):
        runs.train(name, "student", None, Path("other/best.pt"), **settings)


def test_finished_run_with_another_architecture_is_not_reused(tmp_path):
    runs = driver.Runs(tmp_path, driver.BUDGETS["smoke"], train_allowed=False)
    name, settings = "sar_only_after_s0", dict(seed=0, distill_weight=0.0, epochs=1)
    _finished_run(runs, name, runs.config(name, settings), teacher=None, max_offset=None)
    with pytest.raises(SystemExit, match="architecture"):
        runs.train(name, "student", None, None, **settings)


def test_unfinished_run_is_not_trained_in_report_only_mode(tmp_path):
    runs = driver.Runs(tmp_path, driver.BUDGETS["smoke"], train_allowed=False)
    assert not runs.train("teacher", "teacher", None)
    assert not runs.folder("teacher").exists()


def test_planned_runs_follow_the_choices(tmp_path):
    args = argparse.Namespace(out=tmp_path, budget="smoke", report_only=True, ablations=True)
    plan = driver.Driver(args, None).planned()
    assert plan[:4] == [
        "teacher_after",
        "teacher_before_after",
        "sar_only_after_s0",
        "sar_only_before_after_s0",
    ]
    assert [name for name in plan if name.startswith("variant_")] == [f"variant_{k}" for k in driver.VARIANTS]
    assert "hfd_<chosen>_s2" in plan and "ablation_align_off_teacher" in plan
    assert len(plan) == len(set(plan))


def test_choice_picks_the_best_validation_run_once_all_are_finished(tmp_path):
    args = argparse.Namespace(out=tmp_path, budget="smoke", report_only=True, ablations=False)
    experiment = driver.Driver(args, None)
    config = experiment.runs.config("teacher_after", {})
    for name, best in (("teacher_after", 0.4), ("teacher_before_after", 0.6)):
        _finished_run(experiment.runs, name, config, teacher="")
        history = [{"epoch": 1, "val_miou": best - 0.1}, {"epoch": 2, "val_miou": best}]
        (experiment.runs.folder(name) / "done.json").write_text(
            json.dumps({"best_epoch": 2, "history": history})
        )
    assert experiment.teacher_inputs() == "before_after"
    assert experiment.sar_inputs() is None  # no input-choice run finished yet


def test_data_views_keep_the_chosen_inputs():
    scene = Scene(
        "c",
        "g",
        np.stack([np.zeros((4, 4)), np.ones((4, 4))]).astype(np.uint8),
        np.arange(6)[:, None, None].repeat(4, 1).repeat(4, 2).astype(np.uint8),
        np.zeros((4, 4), np.uint8),
        ["VV_before", "VV_after"],
        [f"{b}_{t}" for t in ("before", "after") for b in ("B11", "B08", "B03")],
    )
    data = driver.Data([scene], [], [])
    after = data.view("after", "after").train[0]
    assert after.sar_bands == ["VV_after"] and (after.sar == 1).all()
    assert after.eo_bands == ["B11_after", "B08_after", "B03_after"] and after.eo[:, 0, 0].tolist() == [
        3,
        4,
        5,
    ]
    both = data.view("before_after", "before_after").train[0]
    assert both.sar.shape[0] == 2 and both.eo.shape[0] == 6 and both is not scene
