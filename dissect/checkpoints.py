"""The suite's checkpoint format: ``model.safetensors`` + ``model.json``, never unpickled.

``model.json`` names the architecture as ``"package.module:Class"`` (one of the suite's own
packages), holds its config, and says how to load the data set the model was trained on
(``data.loader``, ``data.name``, ...). Loading imports that class, rebuilds it from the config
and loads the weights; this keeps :mod:`dissect` free of imports of the packages above it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from dissect.atomic import atomic_path, atomic_write_text
from dissect.errors import AuditError

__all__ = [
    "WEIGHTS_FILE",
    "META_FILE",
    "save_model",
    "load_checkpoint",
    "read_metadata",
    "checkpoint_dir",
    "import_object",
]

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
SUITE_PACKAGES = ("simpleconvnet", "handnet", "dissect", "reports")


def import_object(path: str) -> Any:
    """Import ``"package.module:Name"`` from one of the suite's packages only."""
    module_name, _, attr = path.partition(":")
    if not attr or module_name.split(".")[0] not in SUITE_PACKAGES:
        raise AuditError(
            f"checkpoint names an unknown object {path!r}: it was not written by this suite"
        )
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise AuditError(
            f"checkpoint names {path!r}, which this installation lacks: {exc}"
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
    meta["architecture"] = model.architecture  # type: ignore[attr-defined]
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
    cls = import_object(meta["architecture"])
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

    The checkpoint's ``data`` entry names the loader (``"simpleconvnet.data:load_split"``).
    """
    data = meta.get("data") or {}
    loader = data.get("loader")
    if not loader:
        raise AuditError("checkpoint does not say which data set it was trained on")
    load = import_object(loader)
    return load(data["name"], split=split, data_dir=data_dir or data.get("data_dir"))


__all__ += ["load_checkpoint_data"]
