"""The OMBRIA label-efficiency driver (scripts/ombria_label_efficiency.py): nested fractions, the two arms'
training data, the paired intervals and the verdicts of the generated page. Fake scenes and reports only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from hfd_core import IGNORE_INDEX
from hfd_core.data import Scene

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
stats = importlib.import_module("ombria.label_efficiency")
runs = importlib.import_module("ombria.runs")
driver = importlib.import_module("ombria_label_efficiency")


def _scene(index: int, split: str = "train") -> Scene:
    rng = np.random.default_rng(index)
    sar = rng.integers(0, 255, (2, 8, 8)).astype(np.uint8)  # before, after
    eo = rng.integers(0, 255, (6, 8, 8)).astype(np.uint8)
    label = (sar[-1] < 100).astype(np.uint8)
    return Scene(
        f"ombria-{split}-{index:04d}",
        f"ombria-{split}-block{index // 10}",
        sar,
        eo,
        label,
        ["VV_before", "VV_after"],
        [f"{b}_{t}" for t in ("before", "after") for b in ("B11", "B8", "B3")],
    )


@pytest.fixture
def experiment(tmp_path: Path):
    test = [_scene(200, "test"), _scene(201, "test")]
    data = runs.Data([_scene(i) for i in range(40)], [_scene(100)], test)
    args = argparse.Namespace(out=tmp_path / "out", docs=tmp_path / "docs", budget="smoke", report_only=True)
    return driver.LabelEfficiency(args, data)


def test_fractions_are_nested_and_fixed(experiment):
    chosen = [set(experiment.order[: driver.labelled_count(f, 40)]) for f in driver.FRACTIONS]
    assert [len(c) for c in chosen] == [0, 2, 4, 10, 40]
    assert all(small <= large for small, large in zip(chosen, chosen[1:], strict=False))
    assert experiment.order == driver.labelled_order(list(reversed(experiment.pairs.train)))


def test_arms_train_on_the_same_labelled_chips(experiment):
    labelled = set(experiment.order[:4])
    sar_only = experiment.data(0.10, "sar_only").train
    hfd = experiment.data(0.10, "hfd").train
    assert {s.name for s in sar_only} == labelled
    assert len(hfd) == 40
    for scene in hfd:
        if scene.name in labelled:
            assert (scene.label != IGNORE_INDEX).all()
        else:
            assert (scene.label == IGNORE_INDEX).all()
    assert all(s.sar_bands == ["VV_after"] for s in hfd)  # the students read S1 after only
    assert all(len(s.eo_bands) == 6 for s in hfd)  # the teacher reads S2 before + after


def test_the_diagnostic_arm_runs_after_the_plan_on_arm_b_data(experiment):
    plan = experiment.plan()
    diagnostic = [(f, seed) for f, arm, seed in plan if arm == "hfd_features"]
    assert diagnostic == [(f, s) for s in experiment.seeds for f in (0.05, 0.10, 0.25)]
    main = [arm for _, arm, _ in plan if arm in ("hfd", "sar_only")]
    assert [arm for _, arm, _ in plan[: len(main)]] == main  # the diagnostic arms come after the plan
    hfd, features = experiment.data(0.10, "hfd").train, experiment.data(0.10, "hfd_features").train
    assert [s.name for s in hfd] == [s.name for s in features]
    assert all((a.label == b.label).all() for a, b in zip(hfd, features, strict=True))
    balanced = experiment.data(0.10, "hfd_balanced").train
    labelled = sum(s.weight for s in balanced if (s.label != IGNORE_INDEX).all())
    assert labelled == pytest.approx(sum(s.weight for s in balanced) / 2)  # half of the windows
    assert {(f, arm) for f, arm, _ in plan if arm.endswith("_balanced")} == {
        (0.05, "hfd_balanced"),
        (0.10, "hfd_balanced"),
        (0.25, "hfd_balanced"),
        (0.10, "hfd_features_balanced"),
    }
    assert len(experiment.planned()) == len(set(experiment.planned())) == 3 + len(plan)


def test_other_labelled_chips_in_the_same_folder_are_refused(experiment, tmp_path):
    data = runs.Data([_scene(i + 1) for i in range(40)], [_scene(100)], [_scene(200, "test")])
    with pytest.raises(SystemExit, match="other labelled chips"):
        driver.LabelEfficiency(experiment.args, data)


def test_bootstrap_interval_brackets_the_mean_and_reflects_spread():
    constant = np.full((5, 70), 0.04)
    interval = stats.bootstrap_interval(constant)
    assert interval.low == pytest.approx(0.04) and interval.high == pytest.approx(0.04)
    rng = np.random.default_rng(1)
    noisy = 0.04 + rng.normal(0, 0.1, (5, 70))
    interval = stats.bootstrap_interval(noisy)
    assert interval.low < noisy.mean() < interval.high
    assert interval.low > 0  # 350 paired values with std 0.1: standard error 0.005
    wide = stats.bootstrap_interval(0.04 + rng.normal(0, 0.6, (5, 70)))
    assert wide.high - wide.low > interval.high - interval.low


def test_t_interval_matches_the_textbook_formula():
    interval = stats.t_interval([0.01, 0.03, 0.02, 0.04, 0.00])
    half = 2.776445 * np.std([0.01, 0.03, 0.02, 0.04, 0.00], ddof=1) / np.sqrt(5)
    assert interval.mean == pytest.approx(0.02)
    assert interval.high - interval.mean == pytest.approx(half, rel=1e-5)


def _report(values: list[float]) -> dict:
    chips = [{"name": f"c{i}", "miou": v} for i, v in enumerate(values)]
    return {"per_chip_miou": float(np.mean(values)), "per_chip": chips}


def _point(fraction: float, gain: float, seeds: int = 5) -> stats.Point:
    rng = np.random.default_rng(int(fraction * 100))
    point = stats.Point(fraction, round(fraction * 539))
    for seed in range(seeds):
        base = rng.uniform(0.3, 0.8, 70)
        point.sar_only.reports[seed] = _report(list(base))
        point.hfd.reports[seed] = _report(list(base + gain + rng.normal(0, 0.01, 70)))
    return point


def test_reading_says_where_distillation_helps_and_where_it_does_not():
    zero = stats.Point(0.0, 0)
    zero.hfd.reports = {s: _report([0.6] * 70) for s in range(5)}
    points = [zero, _point(0.05, 0.08), _point(0.10, 0.01), _point(0.25, 0.0), _point(1.0, -0.05)]
    text = " ".join(stats.reading(points, otsu=0.569))
    assert "helps beyond the 95 % interval at 5 %" in text
    assert "hurts beyond the interval at 100 %" in text
    assert "At 10 % labels" in text and "does not meet the expected gain" in text
    assert "0.600, above Otsu (0.569)" in text
    table = stats.results_table(points, otsu=0.569, teacher=0.64)
    assert "**helps**" in table and "**hurts**" in table and "| 0 % | 0 | n/a |" in table


def test_diagnostic_splits_the_difference_into_features_and_pseudo_labels():
    points = [_point(0.05, -0.06), _point(0.10, -0.06)]
    for point in points:
        point.hfd_features.reports = {
            seed: _report([chip["miou"] for chip in report["per_chip"]])  # features alone: level
            for seed, report in point.sar_only.reports.items()
        }
    table = stats.diagnostic_table(points)
    assert table.count("\n| 5 % |") == 3 and "| 10 % | features only |" in table  # SAR-only, features, HFD
    text = " ".join(stats.diagnostic_reading(points))
    assert "alone (no pseudo-labels) against the SAR-only student: shows no difference" in text
    assert "(HFD − features only): hurts at 5 %" in text
    assert "| 25 % |" not in stats.diagnostic_table([*points, _point(0.25, 0.0)])  # not run there


def test_one_seed_gives_no_verdict():
    text = " ".join(stats.reading([_point(0.10, 0.2, seeds=1)], otsu=0.5))
    assert "helps" not in text
    assert "not enough seeds yet" in stats.results_table([_point(0.10, 0.2, seeds=1)], 0.5, None)


@pytest.mark.parametrize("budget", ["smoke", "standard"])
def test_only_the_standard_budget_writes_the_cards(experiment, tmp_path, monkeypatch, budget):
    card = tmp_path / "card.md"
    card.write_text("# Water model card\n")
    monkeypatch.setattr(driver, "CARDS", (card,))
    args = argparse.Namespace(**{**vars(experiment.args), "budget": budget, "cards": True, "root": tmp_path})
    driver.LabelEfficiency(
        args, runs.Data(experiment.pairs.train, [_scene(100)], [_scene(200, "test")])
    ).report()
    assert (stats.CARD_START in card.read_text()) == (budget == "standard")


def test_card_section_is_replaced_not_repeated_and_survives_the_card_script(tmp_path):
    card = tmp_path / "card.md"
    card.write_text("# Water model card\n\nbody\n")
    points = [_point(0.10, 0.05), _point(1.0, 0.0)]
    water_card = importlib.import_module("water_model_card")
    water_card.write_generated_section(card, stats.card_section(points, 0.569, planned_missing=3))
    water_card.write_generated_section(card, stats.card_section(points, 0.569, planned_missing=0))
    text = card.read_text()
    assert text.startswith("# Water model card\n\nbody\n")
    assert text.count(stats.CARD_START) == 1 and "not finished" not in text
    assert "| 10 % |" in text and "Otsu on the same chips: 0.569" in text
    assert "For this card: distillation beat SAR-only training beyond the interval at 10 %" in text
    level = stats.card_section([_point(0.10, 0.0)], 0.569, planned_missing=0)
    assert "at no label fraction did the planned HFD arm beat SAR-only training" in level
    assert water_card.foreign_sections(text) == [
        text[text.index(stats.CARD_START) : text.index(stats.CARD_END) + len(stats.CARD_END)]
    ]


def test_a_run_is_claimed_by_one_live_process(tmp_path):
    first = runs.Runs(tmp_path, driver.BUDGETS["smoke"], train_allowed=True)
    assert first.claim("10pct_hfd_s0")
    assert first.claim("10pct_hfd_s0")  # its own claim
    (tmp_path / "claims" / "10pct_sar_only_s0").write_text("1")  # pid 1 is alive: another process's
    assert not first.claim("10pct_sar_only_s0")
    (tmp_path / "claims" / "0pct_hfd_s0").write_text("999999999")  # a dead process's claim is taken over
    assert first.claim("0pct_hfd_s0")
    assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == [
        "0pct_hfd_s0",
        "10pct_hfd_s0",
        "10pct_sar_only_s0",
    ]
