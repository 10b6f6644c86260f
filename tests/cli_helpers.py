"""Run the suite's commands as a user would: a subprocess with the venv's Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
