"""Time taken, throughput and the time left of a segmentation, as text for logs and progress displays.

Shared by ``hfd:segment`` (QGIS feedback: progress text and log) and ``python -m hfd_core segment``, so the
plugin stays a thin shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``: seconds below an hour, minutes above; ``"under 1 s"``
    rather than "0 s", which read as a failed run."""
    seconds = max(0, round(seconds))
    if seconds == 0:
        return "under 1 s"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


class TimeLeft:
    """Estimates the time left from progress percentages: the rate since the first call (``segment_raster``
    reports after each batch of tiles, so loading, a water model's first pass over the raster and the first
    batch's warm-up are left out of the rate) applied to what is left. Says only "estimating" until
    ``MIN_PERCENT`` more is done and ``MIN_SECONDS`` have passed: earlier estimates are mostly noise."""

    MIN_PERCENT = 1.0
    MIN_SECONDS = 3.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.start: float | None = None
        self.first_percent = 0.0

    def __call__(self, percent: float) -> str:
        """``"about 3 min 05 s left"``, or ``"estimating the time left"`` before there is enough to go on."""
        now = self.clock()
        if self.start is None:
            self.start, self.first_percent = now, percent
        elapsed, done = now - self.start, percent - self.first_percent
        if percent >= 100.0:
            return "done"
        if done < self.MIN_PERCENT or elapsed < self.MIN_SECONDS:
            return "estimating the time left"
        left = _round_estimate(elapsed * (100.0 - percent) / done)
        return f"about {format_duration(left)} left" if left > 0 else "a few seconds left"


def _round_estimate(seconds: float) -> float:
    """An estimate shown to 5 s under 2 minutes, to 30 s under 20 minutes, else to the minute: the text does
    not flicker with every tile row, and the precision shown is no finer than the estimate's."""
    step = 5 if seconds < 120 else 30 if seconds < 1200 else 60
    return round(seconds / step) * step


def with_time_left(
    progress: Callable[[float], None], show: Callable[[str], None], time_left: TimeLeft | None = None
) -> Callable[[float], None]:
    """A progress callback that calls ``progress(percent)``, then ``show(text)`` with the ``TimeLeft`` text
    whenever that text changes (a progress display is not redrawn for every tile row)."""
    estimate = time_left or TimeLeft()
    shown = None

    def report(percent: float) -> None:
        nonlocal shown
        progress(percent)
        text = estimate(percent)
        if text != shown:
            shown = text
            show(text)

    return report
