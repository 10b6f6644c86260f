"""The suite's checkpoint format: ``model.safetensors`` + ``model.json``, never unpickled.

``model.json`` names the architecture (the model class's ``architecture`` string), holds its
config, and names the data set the model was trained on (``data.name``, ``data.data_dir``).
Loading looks the architecture up among the installed entry points of the group
:data:`ARCHITECTURES_GROUP` (each package that defines an architecture registers it there in
its ``pyproject.toml``, under that same string), rebuilds the class from the config and loads
the weights. So :mod:`dissect` names none of the packages above it, and a checkpoint can only
build a class that was registered, never an arbitrary import path.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from dissect.infra.atomic import atomic_path, atomic_write_text
from dissect.infra.errors import AuditError

__all__ = [
    "WEIGHTS_FILE",
    "META_FILE",
    "save_model",
    "load_checkpoint",
    "read_metadata",
    "checkpoint_dir",
    "architecture_class",
    "load_checkpoint_data",
    "ARCHITECTURES_GROUP",
]

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
#: The entry-point group that maps a checkpoint's ``architecture`` string to its class.
ARCHITECTURES_GROUP = "convnet_audit.architectures"


def architecture_class(name: str) -> Any:
    """The model class registered under ``name`` in :data:`ARCHITECTURES_GROUP`."""
    found = {ep.name: ep for ep in entry_points(group=ARCHITECTURES_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise AuditError(
            f"checkpoint names an unknown architecture {name!r}: it was not written by this "
            f"suite (known: {known})"
        )
    try:
        return found[name].load()
    except (ImportError, AttributeError) as exc:
        raise AuditError(
            f"checkpoint names architecture {name!r}, which this installation lacks: {exc}"
        ) from exc


def checkpoint_dir(path: str | Path) -> Path:
    """Accept a checkpoint folder or either of its two files; return the folder."""
    p = Path(path)
    if p.name in (WEIGHTS_FILE, META_FILE):
        p = p.parent
    return p


def save_model(
    directory: str | Path, model: nn.Module, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and ``metadata`` (plus its architecture and config) atomically.

    The weights are written first and the JSON last, so a folder whose JSON exists is complete.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(metadata or {})
    meta["architecture"] = model.architecture
    meta["config"] = model.config_dict()  # type: ignore[operator]
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(
        directory / META_FILE, json.dumps(meta, indent=2, sort_keys=True, default=str)
    )
    return directory


def read_metadata(path: str | Path) -> dict[str, Any]:
    d = checkpoint_dir(path)
    meta_path = d / META_FILE
    if not d.exists():
        raise AuditError(f"checkpoint {str(d)!r} does not exist: train one first or check the path")
    if not meta_path.is_file():
        raise AuditError(f"{str(d)!r} is not a checkpoint: {META_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuditError(f"checkpoint metadata {str(meta_path)!r} is corrupt: {exc}") from exc
    if not isinstance(meta, dict) or "architecture" not in meta or "config" not in meta:
        raise AuditError(f"{str(meta_path)!r} lacks the architecture and config of a checkpoint")
    return meta


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint folder describes and load its weights (in eval mode).

    Returns ``(model, metadata)``. Any problem a user can cause (missing or truncated files,
    another architecture, mismatched shapes) raises :class:`AuditError` with one clear line.
    """
    d = checkpoint_dir(path)
    meta = read_metadata(d)
    cls = architecture_class(str(meta["architecture"]))
    try:
        model = cls.from_config_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise AuditError(
            f"checkpoint {str(d)!r} has an invalid architecture config: {exc}"
        ) from exc
    weights = d / WEIGHTS_FILE
    if not weights.is_file():
        raise AuditError(f"checkpoint {str(d)!r} has no {WEIGHTS_FILE}: it is incomplete")
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise AuditError(
            f"checkpoint weights {str(weights)!r} are truncated or corrupt ({exc}): re-train"
        ) from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise AuditError(
            f"checkpoint {str(d)!r} is of another architecture: missing {missing[:3]}, "
            f"unexpected {extra[:3]}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise AuditError(
                f"checkpoint {str(d)!r}: {key} has shape {tuple(value.shape)} but the config "
                f"expects {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
    model.to(map_location).eval()
    return model, meta


def load_checkpoint_data(
    meta: dict[str, Any], split: str = "test", data_dir: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images ``[N, 1, 28, 28]`` in [0, 1] and labels ``[N]`` a checkpoint was made with.

    The checkpoint's ``data.name`` names the data set, which
    :func:`dissect.infra.datasets.load_split` loads (``data_dir`` overrides ``data.data_dir``).
    A ``data.loader`` entry, which older checkpoints hold, is ignored.
    """
    from dissect.infra.datasets import load_split

    data = meta.get("data") or {}
    name = data.get("name")
    if not name:
        raise AuditError("checkpoint does not say which data set it was trained on")
    return load_split(name, split=split, data_dir=data_dir or data.get("data_dir"))
