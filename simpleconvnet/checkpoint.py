"""Checkpoints of the suite: ``model.safetensors`` + ``model.json`` (see :mod:`dissect.infra.checkpoints`),
plus, for training runs, the optimiser state needed to resume (``optimizer.safetensors`` +
``training_state.json``). Nothing is ever unpickled.

A checkpoint folder that is written again (a run's ``last/`` every epoch) is written whole with
:func:`atomic_folder`: every file goes into a fresh sibling ``NAME.tmp-XXXX/``, which then takes
the place of ``NAME/`` in one step, so a process killed at any moment leaves ``NAME/`` as one
consistent checkpoint, the previous one or the new one, never a mix of the two.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dissect.infra.atomic import atomic_path, atomic_write_text
from dissect.infra.checkpoints import (
    CheckpointMeta,
    load_checkpoint,
    package_versions,
    read_metadata,
    save_model,
)
from dissect.infra.errors import AuditError

__all__ = [
    "CheckpointMeta",
    "load_checkpoint",
    "load_model",
    "read_metadata",
    "save_model",
    "save_training_state",
    "load_training_state",
    "package_versions",
    "atomic_folder",
    "recover_folder",
]

OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "training_state.json"

ModelT = TypeVar("ModelT", bound=nn.Module)


def load_model(
    path: str | Path, cls: type[ModelT], map_location: str | torch.device = "cpu"
) -> tuple[ModelT, CheckpointMeta]:
    """:func:`load_checkpoint` for a caller that needs a ``cls`` (e.g. ``SimpleConvNet``, which
    ``HandNet`` extends): ``(model, metadata)``; a checkpoint of another architecture raises
    :class:`AuditError`."""
    model, meta = load_checkpoint(path, map_location=map_location)
    if not isinstance(model, cls):
        raise AuditError(
            f"checkpoint {str(path)!r} holds a {type(model).__name__}, not a {cls.__name__}"
        )
    return model, meta


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


# -- whole-folder writes -------------------------------------------------------------------------
TMP_MARK = ".tmp-"  # NAME.tmp-XXXX: a folder being written (or, after a swap, the old one)
OLD_MARK = ".old-"  # NAME.old-XXXX: the old folder, while the swap takes two renames
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh, empty sibling folder ``NAME.tmp-XXXX`` of ``target``; when the body
    returns, it takes ``target``'s place in one step and the old ``target`` is deleted.

    Until then ``target`` is left as it was, so a reader (or a ``--resume`` after a kill) finds
    either the old folder or the new one, each complete. If the body raises, the temporary
    folder is removed. Strays of an earlier, killed write are cleared first (see
    :func:`recover_folder`). Not for concurrent writers of the same ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + TMP_MARK, dir=target.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700): give it the usual mode
        yield tmp
        _swap_in(tmp, target)
    finally:
        if tmp.exists():  # the body failed, or (after an exchange) it holds the old folder
            shutil.rmtree(tmp, ignore_errors=True)


def recover_folder(target: str | os.PathLike[str]) -> None:
    """Undo what a process killed inside :func:`atomic_folder` left beside ``target``.

    Where the swap takes two renames (no atomic exchange on this system), a kill between them
    leaves no ``target`` but ``NAME.old-XXXX`` and a complete ``NAME.tmp-XXXX``: the new folder
    is put in place (or, failing it, the old one). Every other ``NAME.tmp-*`` / ``NAME.old-*``
    is an unfinished write or an old copy and is deleted. ``target`` itself is never touched
    when it exists. Call it on one process only.
    """
    target = Path(target)
    parent, name = target.parent, target.name
    if not parent.is_dir():
        return
    pattern = glob.escape(name)
    olds = sorted(parent.glob(pattern + OLD_MARK + "*"))
    if not target.exists() and olds:
        old = olds[-1]
        new = parent / (name + TMP_MARK + old.name[len(name) + len(OLD_MARK) :])
        os.rename(new if new.is_dir() else old, target)
    for stray in [*parent.glob(pattern + TMP_MARK + "*"), *parent.glob(pattern + OLD_MARK + "*")]:
        if stray.is_dir() and not stray.is_symlink():
            shutil.rmtree(stray, ignore_errors=True)


def _swap_in(tmp: Path, target: Path) -> None:
    """Put the complete folder ``tmp`` in ``target``'s place; afterwards ``tmp`` holds the old
    folder (removed by the caller) or no longer exists."""
    if not target.exists() and not target.is_symlink():
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):
        return
    # two renames; a kill in between is undone by recover_folder
    old = target.with_name(target.name + OLD_MARK + tmp.name[len(target.name) + len(TMP_MARK) :])
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


_RENAMEAT2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot."""
    global _RENAMEAT2
    if not sys.platform.startswith("linux"):
        return False
    if _RENAMEAT2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
        except (OSError, AttributeError):  # no such libc function (e.g. an old glibc, musl)
            _RENAMEAT2 = False
            return False
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        _RENAMEAT2 = fn
    if _RENAMEAT2 is False:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # the file system (or kernel) has no exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
