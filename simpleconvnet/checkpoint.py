"""Checkpoints of the suite: ``model.safetensors`` + ``model.json`` (see :mod:`dissect.checkpoints`),
plus, for training runs, the optimiser state needed to resume (``optimizer.safetensors`` +
``training_state.json``). Nothing is ever unpickled."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dissect.atomic import atomic_path, atomic_write_text
from dissect.checkpoints import load_checkpoint, read_metadata, save_model
from dissect.errors import AuditError

__all__ = [
    "load_checkpoint",
    "load_model",
    "read_metadata",
    "save_model",
    "save_training_state",
    "load_training_state",
    "package_versions",
]

OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "training_state.json"

ModelT = TypeVar("ModelT", bound=nn.Module)


def load_model(
    path: str | Path, cls: type[ModelT], map_location: str | torch.device = "cpu"
) -> tuple[ModelT, dict[str, Any]]:
    """:func:`load_checkpoint` for a caller that needs a ``cls`` (e.g. ``SimpleConvNet``, which
    ``HandNet`` extends): ``(model, metadata)``; a checkpoint of another architecture raises
    :class:`AuditError`."""
    model, meta = load_checkpoint(path, map_location=map_location)
    if not isinstance(model, cls):
        raise AuditError(
            f"checkpoint {str(path)!r} holds a {type(model).__name__}, not a {cls.__name__}"
        )
    return model, meta


def package_versions() -> dict[str, str]:
    import numpy
    import safetensors
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }


def save_training_state(
    directory: Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Save the optimiser's tensors (safetensors) and its settings plus ``state`` (JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, entries in sd["state"].items():
        for name, value in entries.items():
            t = value if torch.is_tensor(value) else torch.tensor(value, device="cpu")
            tensors[f"{idx}.{name}"] = t.detach().cpu().contiguous()
    with atomic_path(directory / OPTIM_FILE) as tmp:
        save_file(tensors, str(tmp))
    payload = {"param_groups": sd["param_groups"], **state}
    atomic_write_text(directory / STATE_FILE, json.dumps(payload, indent=2, default=str))


def load_training_state(
    directory: Path, optimizer: torch.optim.Optimizer, device: torch.device
) -> dict[str, Any]:
    """Restore the optimiser from a checkpoint folder; return the saved training state."""
    try:
        payload = json.loads((directory / STATE_FILE).read_text())
        tensors = load_file(str(directory / OPTIM_FILE), device=str(device))
    except (OSError, ValueError, RuntimeError) as exc:
        raise AuditError(
            f"cannot resume from {str(directory)!r}: its training state is missing or corrupt "
            f"({exc}); start again without --resume"
        ) from exc
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value.cpu() if name == "step" else value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": payload.pop("param_groups")})
    except (ValueError, KeyError) as exc:
        raise AuditError(
            f"cannot resume from {str(directory)!r}: its optimiser does not match this run ({exc})"
        ) from exc
    return payload
