"""``dissect`` command line: each group of subcommands lives in its own module and registers
itself here (``register(subparsers)``; each parser sets ``check_options(args)`` and
``func(args) -> int``).

Every option is checked before anything is loaded: the parse itself (numbers and their
ranges, choices, ``--image`` as an index or an existing file), then ``check_options`` (the
model options, the device, the checkpoint's metadata, the data set's files, ``--out``, an
image file). What only the network can tell (a layer's name, a channel's or a class's range)
is checked as soon as it is loaded, before anything is written. Bad input is one line on
stderr (``error: ...``) and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile

from dissect import cli_analysis, cli_explain, cli_superstimuli
from dissect.infra import distributed as dist
from dissect.infra.runtime import CliParser, resolve_device, run_cli

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="dissect",
        description="Take a trained ConvNet of the suite apart, channel by channel.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_analysis.register(sub)
    cli_superstimuli.register(sub)
    cli_explain.register(sub)
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    args.check_options(args)
    if not dist.launched_by_torchrun():
        return int(args.func(args) or 0)
    # Under torchrun the data-set loops (contribution shares, activation statistics, ...) are
    # split across ranks and reduced; rank 0 alone prints and writes, the others write into a
    # scratch folder that is thrown away.
    args.device = str(dist.init_from_env(resolve_device(args.device)))
    try:
        if dist.is_main():
            code = int(args.func(args) or 0)
        else:
            with (
                tempfile.TemporaryDirectory() as scratch,
                contextlib.redirect_stdout(io.StringIO()),
            ):
                args.out = scratch
                code = int(args.func(args) or 0)
        dist.barrier()  # every rank done before any leaves: gloo aborts a rank whose peer left
    finally:
        dist.shutdown()
    return dist.leave(code)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
