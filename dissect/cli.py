"""``dissect`` command line: each group of subcommands lives in its own module and registers
itself here (``register(subparsers)``; each parser sets ``func(args) -> int``)."""

from __future__ import annotations

import argparse

from dissect import cli_analysis, cli_superstimuli
from dissect.runtime import run_cli

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dissect",
        description="Take a trained ConvNet of the suite apart, channel by channel.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_analysis.register(sub)
    cli_superstimuli.register(sub)
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
