"""Helpers shared by the benchmark scripts (run from the repository root)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else platform.processor() or "cpu"
    )
    return {
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
    }


def emit(figures: dict[str, Any]) -> None:
    """Print the figures as one JSON document on stdout."""
    print(json.dumps({**figures, "machine": machine()}, indent=2, default=float))


def run_cli(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env={**os.environ, **(env or {})},
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{module} {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result


def mean_spread(values: list[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": float(t.mean()), "min": float(t.min()), "max": float(t.max()),
            "std": float(t.std()) if len(values) > 1 else 0.0}  # fmt: skip
