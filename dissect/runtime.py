"""Device choice, progress bars and the command-line error boundary shared by every package."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
from tqdm.auto import tqdm

from dissect.errors import AuditError

__all__ = ["resolve_device", "progress", "run_cli"]

T = TypeVar("T")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cpu``/``cuda``/``cuda:N`` are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
