"""Subcommands of ``dissect`` (filled in by their owner)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add this module's subcommands to the ``dissect`` parser."""
