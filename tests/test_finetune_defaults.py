"""The promise of hfd:finetune's defaults (README "Fine-tuning defaults"), checked the way a user runs it:
`qgis_process run hfd:finetune` with SAR, EO and OUTPUT_MODEL only (the bundled models, every default), in
QGIS's own Python, on the real Sen1Floods11 India_900498 Sentinel-1 + Sentinel-2 chip. Scored against
the chip's hand labels on the held-out blocks only (pixels the run never trained on, as the model file
records)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from test_finetune_fixtures import india_paths

from hfd_core.modelfile import bundled_model_path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("finetune_defaults", REPO / "bench" / "finetune_defaults.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

#: The gains README promises: at least this much water IoU over the bundled student, and at most this far
#: below the teacher that provided the targets.
MIN_GAIN, MAX_GAP_TO_TEACHER = 0.10, 0.10


needs_bundled_models = pytest.mark.skipif(
    not bundled_model_path("student").is_file(), reason="bundled models not built (make train-bundled)"
)


@pytest.fixture(scope="module")
def scores(qgis_process, installed_profile, shared_data, tmp_path_factory) -> dict:
    """One run of the defaults through qgis_process, scored on its held-out blocks (bench script)."""
    india = india_paths(shared_data)
    output = tmp_path_factory.mktemp("defaults") / "tuned.pt"
    run = qgis_process(
        installed_profile, "run", "hfd:finetune", "--",
        f"SAR={india['S1Hand']}", f"EO={india['S2Hand']}", f"OUTPUT_MODEL={output}",
        timeout=3600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    found = bench.chip_scores(shared_data / "sen1floods11" / "India_900498", output)
    return {"held_out_pixels": found["held_out_pixels"], **found["held_out"]}


@pytest.mark.slow
@needs_bundled_models
def test_defaults_run_with_the_required_parameters_only_and_beat_otsu(scores):
    """The issue's bar: at least Otsu's water IoU on the same chip; measured 0.692, Otsu on VH 0.618."""
    assert scores["held_out_pixels"] == 256 * 256  # one of the four 256-pixel blocks of the 512 x 512 chip
    assert scores["student_after"] > scores["otsu_vh"], scores


@pytest.mark.slow
@needs_bundled_models
def test_defaults_bring_the_student_close_to_its_teacher(scores):
    """The promise: the bundled models never saw this chip (make train-bundled leaves it out); measured
    2026-12-05, bundled student 0.227, fine-tuned 0.692, teacher 0.689 on this block."""
    assert scores["student_after"] >= scores["student_before"] + MIN_GAIN, scores
    assert scores["student_after"] >= scores["teacher"] - MAX_GAP_TO_TEACHER, scores


@pytest.mark.slow
@needs_bundled_models
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-05 on this block: fine-tuned 0.692, the best VV or VH threshold chosen with the "
    "block's own hand labels 0.700; on the chip's other two blocks the defaults reach it (0.882 vs 0.880, "
    "0.712 vs 0.694; README 'Fine-tuning defaults'). XPASS (a failure) means the label-free student now "
    "matches any one-band threshold here: drop this mark.",
)
def test_defaults_reach_the_best_threshold_chosen_with_the_labels(scores):
    assert scores["student_after"] >= scores["best_threshold"], scores
