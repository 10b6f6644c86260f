"""Run the suite's commands as a user would: a subprocess with the venv's Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, timeout: float = 240, env: dict | None = None):
    """``python -m module args``; returns the CompletedProcess (text output)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=full_env,
    )


def assert_one_line_error(result, needle: str) -> None:
    """Exit code 2, no traceback, one line on stderr that contains ``needle``."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and needle in lines[0], result.stderr


def assert_help_documents_every_option(parser, text: str, command: str) -> list[tuple[Any, str]]:
    """Every option of ``parser`` has help that shows its default (or says it is required) and
    appears in ``text`` (the printed ``--help``, whitespace collapsed). Returns each option's
    action with its help as shown, for further checks."""
    import argparse

    options = [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]
    assert "--quiet" in {s for a in options for s in a.option_strings}, command
    formatter = parser._get_formatter()
    shown_all = []
    for action in options:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, (command, action.option_strings)
        shown = str(formatter._get_help_string(action)) % {"default": action.default}
        assert "default" in shown or (action.required and "required" in shown), (command, shown)
        assert action.option_strings[-1] in text, (command, action.option_strings)
        shown_all.append((action, shown))
    required = sum(a.required for a in options)
    assert text.count("default") >= len(options) - 1 - required
    return shown_all
