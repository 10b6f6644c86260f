"""A person's weights file read without unpickling objects, and loaded into their model.

Weights come from a ``.safetensors`` file or a ``torch.save``-d state dict, which is read with
``torch.load(weights_only=True)``: a file that would need arbitrary objects unpickled (and so
could run code) is refused. Every problem a user can cause raises :class:`AuditError` with one
line: what is wrong and what to do.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from dissect.infra.errors import AuditError

__all__ = ["read_state_dict", "load_weights", "one_line", "describe_exception"]

SAFE_SAVE_HINT = (
    "save a plain state dict instead (torch.save(model.state_dict(), F)) or a .safetensors file"
)
# Keys under which training scripts commonly wrap the state dict (with epoch, optimizer, ...).
WRAPPER_KEYS = ("state_dict", "model")
DATA_PARALLEL_PREFIX = "module."


def one_line(text: str, limit: int = 200) -> str:
    """``text`` with its whitespace collapsed, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    message = one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _refused_global(message: str) -> str:
    """The global the weights-only unpickler refused, as its message names it, or ''."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    return f" (it names {match.group(1)})" if match else ""


def _is_weights_only_refusal(exc: BaseException) -> bool:
    if isinstance(exc, pickle.UnpicklingError):
        return True
    message = str(exc).lower()
    return "weights_only" in message or "weights only" in message or "unsupported global" in message


def _load_raw(path: Path) -> Any:
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise AuditError(
                f"weights file {str(path)!r} is truncated or corrupt "
                f"({describe_exception(exc)}): save or copy it again"
            ) from exc
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the one line is ours
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if _is_weights_only_refusal(exc):
            raise AuditError(
                f"weights file {str(path)!r} needs unpickling arbitrary Python objects"
                f"{_refused_global(str(exc))}, which could run code and is refused: "
                f"{SAFE_SAVE_HINT}"
            ) from exc
        # torch raises RuntimeError (broken zip), EOFError (cut short), KeyError (not a
        # checkpoint), ... for files it cannot read.
        raise AuditError(
            f"weights file {str(path)!r} is truncated, corrupt or not a PyTorch file "
            f"({describe_exception(exc)}): {SAFE_SAVE_HINT}"
        ) from exc


def _unwrap(obj: Any) -> Any:
    """The state dict inside a checkpoint dict (``{"state_dict": ...}``, ``{"model": ...}``,
    up to two levels deep); ``obj`` itself when it is not such a wrapper."""
    for _ in range(2):
        if not isinstance(obj, Mapping) or all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next(
            (obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None
        )
        if inner is None:
            break
        obj = inner
    return obj


def _check_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise AuditError(
            f"weights file {str(path)!r} holds a Python {type(obj).__name__}, not a state dict: "
            f"{SAFE_SAVE_HINT}"
        )
    if not obj:
        raise AuditError(f"weights file {str(path)!r} holds an empty state dict: {SAFE_SAVE_HINT}")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise AuditError(
                f"weights file {str(path)!r} is not a state dict: entry {key!r} is not a tensor "
                f"({type(value).__name__}); {SAFE_SAVE_HINT}"
            )
    return dict(obj)


def _strip_data_parallel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` that DataParallel / DistributedDataParallel put before every key."""
    if all(key.startswith(DATA_PARALLEL_PREFIX) for key in state):
        return {key[len(DATA_PARALLEL_PREFIX) :]: value for key, value in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (parameter name -> tensor, on the CPU) without unpickling objects.

    ``.safetensors`` files are read with safetensors; anything else (``.pt``, ``.pth``,
    ``.bin``, ...) with ``torch.load(weights_only=True)``. A checkpoint dict that wraps the
    state dict under ``"state_dict"`` or ``"model"`` is unwrapped, and a ``module.`` prefix on
    every key (DataParallel, DDP) is dropped.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise AuditError(f"weights file {str(path)!r} does not exist: check the path")
    if not path.is_file():
        raise AuditError(f"weights path {str(path)!r} is not a file: give the weights file")
    state = _check_state_dict(_unwrap(_load_raw(path)), path)
    return _strip_data_parallel(state)


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def _first(keys: list[str], limit: int = 3) -> str:
    more = f" (and {len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model`` (strictly) and put the model in eval mode.

    Raises :class:`AuditError` naming the first missing, unexpected and mismatched keys (with
    both shapes) when the weights do not fit the model.
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} is {_shape(state[key])} in the file but {_shape(expected[key])} in the model"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected {_first(unexpected)}")
    if mismatched:
        problems.append(_first(mismatched))
    if problems:
        raise AuditError(
            "weights do not fit this model: "
            + "; ".join(problems)
            + "; check the model spec and --model-args"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise AuditError(f"weights do not fit this model: {one_line(str(exc))}") from exc
    model.eval()
