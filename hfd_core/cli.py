"""Command line of hfd_core: ``python -m hfd_core <command> ...``.

Each concern registers its own sub-commands: a module listed in COMMAND_MODULES exposes
``register(subparsers)``, which adds its parsers and sets ``func`` (called with the parsed args, returns an
exit code).

User errors (bad input, unreadable or unwritable files, numbers out of range) print one line and exit with 2,
as argparse does for bad options; only bugs show a traceback. SIGTERM ends a run like Ctrl+C, so temporary
files are removed on the way out.
"""

from __future__ import annotations

import argparse
import importlib
import math
import signal
import sys
from collections.abc import Callable

from hfd_core.errors import user_error_message

COMMAND_MODULES = (
    "hfd_core.train.cli",
    "hfd_core.infer.cli",
)
#: Exit status of a user error (argparse's for a bad option).
USAGE_ERROR = 2


def number(
    kind: type[int] | type[float],
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
) -> Callable[[str], int | float]:
    """An argparse ``type``: ``kind`` within [minimum, maximum] (and > above, < below), finite; the same
    bounds as the matching Processing parameter, so the CLI refuses what the algorithms refuse."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None
        problems = [
            (not math.isfinite(value), "a finite number"),
            (minimum is not None and value < minimum, f">= {minimum}"),
            (maximum is not None and value > maximum, f"<= {maximum}"),
            (above is not None and value <= above, f"> {above}"),
            (below is not None and value >= below, f"< {below}"),
        ]
        failed = [text for bad, text in problems if bad]
        if failed:
            raise argparse.ArgumentTypeError(f"{text} is not allowed: must be {' and '.join(failed)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hfd_core", description="HFD-Net SAR segmentation")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse and run one command; errors propagate (for callers in Python; ``run`` is the entry point)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def _terminate(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def run(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hfd_core``: ``main`` with user errors as one line and exit status 2, and
    SIGTERM ending the run like Ctrl+C (``finally`` blocks remove temporary files)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as error:
        message = user_error_message(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return USAGE_ERROR
