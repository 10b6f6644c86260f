"""Device choice, progress bars and the command-line error boundary shared by every package."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import torch
from tqdm.auto import tqdm

from dissect.infra.errors import AuditError

__all__ = [
    "resolve_device",
    "check_device",
    "progress",
    "run_cli",
    "CliParser",
    "check_writable",
    "DefaultsFormatter",
    "whole_number",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
]

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
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise AuditError(
                f"--device {name}: this machine has {count} CUDA GPU(s), numbered from 0: "
                "use cuda, auto or cpu"
            )
    return _deterministic(device)


def check_device(name: str) -> None:
    """Check a ``--device`` value the way :func:`resolve_device` would, before any work."""
    resolve_device(name)


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
    """Run a CLI entry point: an :class:`AuditError` becomes one line on stderr and exit code 2.

    A file-system failure that no check could foresee (a disk that fills up, a folder made
    read-only during the run) becomes one line too, with exit code 1."""
    prog = "error"
    try:
        code = main(argv)
    except AuditError as exc:
        print(f"{prog}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not _file_system_error(exc):
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        print(f"{prog}: {_one_line(reason)}{where}: check the path, its permissions and free space",
              file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: finished files are kept; re-run with --resume to go on", file=sys.stderr
        )
        return 130
    return int(code or 0)


def _file_system_error(exc: OSError) -> bool:
    import errno

    kinds = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)  # fmt: skip
    return isinstance(exc, kinds) or exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- command lines ------------------------------------------------------------------------------
class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default: ``(default X)`` is appended to each help text
    that does not already name its default; an on/off flag reads ``(default off)``; a required
    option has none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.default is argparse.SUPPRESS
            or action.required
            or isinstance(action, argparse._HelpAction | argparse._VersionAction)
            or "default" in text
        ):
            return text
        default = action.default
        if isinstance(action, argparse._StoreTrueAction):
            shown = "on" if default else "off"
        elif default is None or default == "":
            shown = "none"
        elif isinstance(default, tuple | list):
            shown = ",".join(str(v) for v in default)
        else:
            shown = str(default)
        shown = shown.replace("%", "%%")
        return f"{text} (default {shown})" if text else f"(default {shown})"


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one :class:`AuditError` line (``run_cli`` prints
    it, exit code 2) instead of usage plus an error, and whose ``--help`` shows every default.
    Sub-parsers made by ``add_subparsers().add_parser`` are of the same class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise AuditError(f"{self.prog}: {message}; see {self.prog} --help")

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """As ``ArgumentParser.parse_args``, but an unrecognised argument is reported by the
        subcommand it was given to (``see PROG COMMAND --help``), not by the top parser."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The innermost (sub)parser that ``parsed`` went through."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and action.dest != argparse.SUPPRESS:
                name = getattr(parsed, action.dest, None)
                sub = action.choices.get(name) if isinstance(name, str) else None
                if isinstance(sub, CliParser):
                    return sub._chosen(parsed)
                if sub is not None:
                    return sub
        return self


def whole_number(text: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``text`` as an int from ``minimum`` to ``maximum`` (an ``argparse`` type: errors are one
    line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {maximum}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def _number(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    if value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} must be {'greater than 0' if positive else '0 or more'}"
        )
    return value


def positive_float(text: str) -> float:
    return _number(text, positive=True)


def non_negative_float(text: str) -> float:
    return _number(text, positive=False)


def check_writable(folder: str | os.PathLike[str], option: str = "--out") -> Path:
    """``folder`` is, or can be made as, a folder this process may write into; nothing is
    made (an :class:`AuditError` line says what is wrong). Returns it as a path."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise AuditError(
            f"{option} {str(out)!r} is a file, not a folder: give a folder (it is made if needed)"
        )
    ancestor = out
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise AuditError(
            f"{option} {str(out)!r}: {str(ancestor)!r} is a file, so no folder can be made "
            f"there: choose another {option}"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise AuditError(f"{option} {str(out)!r}: {str(ancestor)!r} is not writable: choose another {option}")  # fmt: skip
    return out
