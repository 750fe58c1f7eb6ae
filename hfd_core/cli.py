"""Command line of hfd_core: ``python -m hfd_core <command> ...``.

Each concern registers its own sub-commands: a module listed in COMMAND_MODULES exposes
``register(subparsers)``, which adds its parsers and sets ``func`` (called with the parsed args, returns an
exit code).
"""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES = (
    "hfd_core.train.cli",
    "hfd_core.infer.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hfd_core", description="HFD-Net SAR segmentation")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
