"""Entry point of ``python -m hfd_core``."""

from hfd_core.cli import run

raise SystemExit(run())
