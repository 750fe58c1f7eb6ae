"""Time taken, MP/s and the time left (hfd_core.infer.timing), in segment_raster, the CLI and hfd:segment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from recording_feedback import Feedback

from hfd_core.infer.timing import TimeLeft, format_duration, with_time_left

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "under 1 s"),
        (0.4, "under 1 s"),
        (42.4, "42 s"),
        (59.6, "1 min 00 s"),
        (185, "3 min 05 s"),
        (3725, "1 h 02 min"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_time_left_extrapolates_the_rate_since_the_first_report():
    clock = FakeClock()
    left = TimeLeft(clock)
    assert left(10.0) == "estimating the time left"  # the first report starts the clock (loading excluded)
    clock.now += 2.0
    assert left(12.0) == "estimating the time left"  # under MIN_SECONDS: too early to say
    clock.now += 8.0  # 10 % in 10 s since the first report: 80 % left take 80 s
    assert left(20.0) == "about 1 min 20 s left"
    clock.now += 40.0  # 60 % in 50 s: the 30 % left take 25 s
    assert left(70.0) == "about 25 s left"
    assert left(99.9) == "a few seconds left"  # not "about 0 s"
    assert left(100.0) == "done"


def test_time_left_rounds_long_estimates():
    clock = FakeClock()
    left = TimeLeft(clock)
    left(1.0)
    clock.now += 60.4  # 1 % in 60.4 s: the 98 % left take 98.7 min, shown to the minute
    assert left(2.0) == "about 1 h 39 min left"


def test_with_time_left_reports_progress_always_and_text_when_it_changes():
    clock = FakeClock()
    percents, texts = [], []
    report = with_time_left(percents.append, texts.append, TimeLeft(clock))
    for percent in (5.0, 6.0, 7.0):
        report(percent)
    clock.now += 10.0
    report(15.0)
    assert percents == [5.0, 6.0, 7.0, 15.0]
    assert texts == ["estimating the time left", "about 1 min 25 s left"]


def test_segment_command_prints_time_and_megapixels_per_second(tmp_path, demo_sample, tiny_sar_model):
    done = subprocess.run(
        [sys.executable, "-m", "hfd_core", "segment", str(demo_sample), str(tmp_path / "out.tif"),
         "--model", str(tiny_sar_model)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert " MP/s) on cpu" in done.stdout and "0.07 MP (0.07 MP valid) in " in done.stdout
    assert "100.0% done" in done.stderr


def test_segment_algorithm_logs_megapixels_per_second_and_shows_time_left(
    processing_provider, demo_sample, tiny_sar_model, tmp_path
):
    import processing

    feedback = Feedback()
    processing.run(
        "hfd:segment",
        {"INPUT": str(demo_sample), "MODEL": str(tiny_sar_model), "OUTPUT": str(tmp_path / "out.tif"),
         "TILE_SIZE": 64, "OVERLAP": 16},
        feedback=feedback,
    )  # fmt: skip
    assert any(" MP/s) on cpu" in line for line in feedback.lines), feedback.lines
    texts = feedback.progress_texts
    assert texts[0] == "estimating the time left" and texts[-1] == "done", texts
