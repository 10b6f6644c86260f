"""Device choice, progress bars and the command-line error boundary shared by every package."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
from tqdm.auto import tqdm

from dissect.errors import AuditError

__all__ = ["resolve_device", "progress", "run_cli"]

T = TypeVar("T")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present (under torchrun: when there is a GPU for every local
    process), else the CPU; ``cpu``/``cuda``/``cuda:N`` are checked. CUDA runs use
    deterministic kernels."""
    if name == "auto":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return _deterministic(torch.device("cuda" if gpus >= local and gpus > 0 else "cpu"))
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise AuditError(f"unknown device {name!r}: use auto, cpu or cuda") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AuditError(
            "--device cuda was asked for but no CUDA GPU is available: use auto or cpu"
        )
    if device.type not in ("cpu", "cuda"):
        raise AuditError(f"unsupported device {name!r}: use auto, cpu or cuda")
    return _deterministic(device)


def _deterministic(device: torch.device) -> torch.device:
    """On CUDA, ask for deterministic kernels (cuDNN, cuBLAS, scatter-adds), so that the same
    command gives the same weights twice; the CPU kernels used here already are."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def progress(
    iterable: Iterable[T], *, quiet: bool, desc: str = "", total: int | None = None, leave=True
) -> Iterable[T]:
    """A tqdm progress bar on stderr, or the bare iterable when ``quiet``."""
    if quiet:
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True, file=sys.stderr)


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a CLI entry point: an :class:`AuditError` becomes one line on stderr and exit code 2."""
    prog = "error"
    try:
        code = main(argv)
    except AuditError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished files are kept; re-run with --resume to go on", file=sys.stderr
        )
        return 130
    return int(code or 0)
