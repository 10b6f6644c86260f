"""``simpleconvnet prune`` (filled in with the pruning work)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the ``prune`` subcommand."""
