"""A small textual progress bar on stderr (no tqdm dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``[#####.....] 12/40 loss 0.513  3.1 it/s`` redrawn in place; does nothing when disabled or when the
    stream is not a terminal (a log redirected with nohup got one line per step; the loop's per-epoch line
    stays)."""

    def __init__(
        self, total: int, label: str, enabled: bool = True, width: int = 24, stream: TextIO | None = None
    ):
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.width = width
        self.count = 0
        self.start = time.monotonic()

    def update(self, postfix: str = "") -> None:
        self.count += 1
        if not self.enabled:
            return
        filled = int(self.width * min(self.count, self.total) / self.total)
        rate = self.count / max(time.monotonic() - self.start, 1e-9)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.count}/{self.total} {postfix} {rate:.1f} it/s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
