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
def test_defaults_run_with_the_required_parameters_only_and_beat_the_thresholds(scores):
    """The issue's bar: at least Otsu's water IoU on the same chip; measured 0.723 against Otsu on VH 0.618
    and 0.700 for the best VV or VH threshold chosen with the block's own labels."""
    assert scores["held_out_pixels"] == 256 * 256  # one of the four 256-pixel blocks of the 512 x 512 chip
    assert scores["student_after"] > scores["otsu_vh"], scores
    assert scores["student_after"] >= scores["best_threshold"], scores


@pytest.mark.slow
@needs_bundled_models
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-05: rules first (the default targets) takes the bundled student from 0.757 "
    "to 0.723 on this block; the teacher's classes alone gave 0.763. The bundled teacher learnt this chip's "
    "hand labels (0.899 here) and is better than the rules on it (0.813); on the same chip with models that "
    "never saw it, rules first gained 0.03-0.14 where the teacher's classes lost 0.31-0.58 (docs/experiments/"
    "finetune_defaults.md, 'Rules first'). XPASS (a failure) means the defaults no longer cost this chip "
    "anything: drop this mark.",
)
def test_defaults_do_no_harm_on_a_chip_the_models_learnt(scores):
    assert scores["student_after"] >= scores["student_before"] - 0.01, scores


@pytest.mark.slow
@needs_bundled_models
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-05 on this chip: bundled student 0.757, fine-tuned 0.723 (rules first; 0.763 "
    "with the teacher's classes), teacher 0.899, Otsu VH 0.618 (README 'Fine-tuning defaults'). The bundled "
    "models were trained on this chip and no VV/VH threshold reaches 0.70 on its held-out block. XPASS (a "
    "failure) means the defaults now keep the promise here: drop this mark.",
)
def test_defaults_bring_the_student_close_to_its_teacher(scores):
    assert scores["student_after"] >= scores["student_before"] + MIN_GAIN, scores
    assert scores["student_after"] >= scores["teacher"] - MAX_GAP_TO_TEACHER, scores
