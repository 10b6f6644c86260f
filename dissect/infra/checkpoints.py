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
import platform
from dataclasses import asdict, dataclass, field, fields
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
    "CheckpointMeta",
    "CHECKPOINT_VERSION",
    "package_versions",
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


#: The version of ``model.json`` that :class:`CheckpointMeta` writes. 1: the untyped files
#: written before it (no ``version`` field), which still load.
CHECKPOINT_VERSION = 2


def package_versions() -> dict[str, str]:
    """The versions a checkpoint records: Python and the packages its numbers depend on."""
    import numpy
    import safetensors

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    versions.update(numpy=numpy.__version__, safetensors=safetensors.__version__)
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency of the suite
        pass
    return versions


@dataclass
class CheckpointMeta:
    """What ``model.json`` says beside the weights, written and read here only.

    ``kind``: the network family a person reads ("SimpleConvNet", "HandNet"); ``mode``: how this
    checkpoint was made ("trained", "pruned", "hand-built", "constrained", "free", "compiled");
    ``parent``: the checkpoint folder it was made from (a pruned net's training run, a
    fine-tuned HandNet's built one), as given; ``data``: the data set (``name``, ``data_dir``);
    ``metrics``: its evaluation (``accuracy`` at least, where it was measured); ``extra``: what
    one step alone records (a training history, a pruning config), kept as top-level keys of
    the JSON so that files stay readable by hand.
    """

    architecture: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    kind: str = ""
    mode: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    seed: int | None = None
    world_size: int = 1
    epoch: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = CHECKPOINT_VERSION

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "extra"}
        clash = set(self.extra) & set(out)
        if clash:
            raise ValueError(f"extra metadata may not reuse the typed fields {sorted(clash)}")
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CheckpointMeta:
        """Any version: a file without ``version`` is version 1, whose HandNet files said
        ``stage`` or ``finetune`` for the mode."""
        raw = dict(raw)
        names = {f.name for f in fields(cls)} - {"extra"}
        typed = {k: raw.pop(k) for k in list(raw) if k in names}
        if "version" not in typed:
            typed["version"] = 1
            for old in ("stage", "finetune"):
                if old in raw and "mode" not in typed:
                    typed["mode"] = str(raw.pop(old))
        for key in ("config", "data", "metrics", "versions"):
            typed[key] = dict(typed.get(key) or {})
        typed["history"] = list(typed.get("history") or [])
        return cls(**typed, extra=raw)

    def with_(self, **changes: Any) -> CheckpointMeta:
        """A copy with ``changes``; keys that are not typed fields go into ``extra``."""
        names = {f.name for f in fields(self)}
        typed = {k: v for k, v in changes.items() if k in names}
        extra = {**self.extra, **{k: v for k, v in changes.items() if k not in names}}
        return type(self)(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **typed,
                             "extra": extra})  # fmt: skip


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
    directory: str | Path, model: nn.Module, metadata: CheckpointMeta | dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and its :class:`CheckpointMeta` atomically; the model's
    architecture and config, the current version and the package versions are filled in.

    ``metadata`` may be a plain dict of the same keys (those that are not typed fields land in
    ``extra``). The weights are written first and the JSON last, so a folder whose JSON exists
    is complete.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if not isinstance(metadata, CheckpointMeta):
        metadata = CheckpointMeta().with_(**(metadata or {}))
    meta = metadata.with_(
        architecture=model.architecture,
        config=model.config_dict(),  # type: ignore[operator]
        versions=metadata.versions or package_versions(),
        version=CHECKPOINT_VERSION,
    )
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    atomic_write_text(
        directory / META_FILE, json.dumps(meta.to_json(), indent=2, sort_keys=True, default=str)
    )
    return directory


def read_metadata(path: str | Path) -> CheckpointMeta:
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
    version = meta.get("version", 1)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise AuditError(
            f"{str(meta_path)!r} is checkpoint format version {version!r}, newer than this "
            f"suite reads ({CHECKPOINT_VERSION}): upgrade the suite"
        )
    try:
        return CheckpointMeta.from_json(meta)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"checkpoint metadata {str(meta_path)!r} is invalid: {exc}") from exc


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model a checkpoint folder describes and load its weights (in eval mode).

    Returns ``(model, metadata)``. Any problem a user can cause (missing or truncated files,
    another architecture, mismatched shapes) raises :class:`AuditError` with one clear line.
    """
    d = checkpoint_dir(path)
    meta = read_metadata(d)
    cls = architecture_class(meta.architecture)
    try:
        model = cls.from_config_dict(meta.config)
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
    meta: CheckpointMeta, split: str = "test", data_dir: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images ``[N, 1, 28, 28]`` in [0, 1] and labels ``[N]`` a checkpoint was made with.

    The checkpoint's ``data.name`` names the data set, which
    :func:`dissect.infra.datasets.load_split` loads (``data_dir`` overrides ``data.data_dir``).
    A ``data.loader`` entry, which older checkpoints hold, is ignored.
    """
    from dissect.infra.datasets import load_split

    data = meta.data
    name = data.get("name")
    if not name:
        raise AuditError("checkpoint does not say which data set it was trained on")
    return load_split(name, split=split, data_dir=data_dir or data.get("data_dir"))
