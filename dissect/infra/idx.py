"""MNIST and Fashion-MNIST as published: four IDX files (each also found as ``NAME.gz``) in a
folder a person gives. They are found in torchvision's layout or in a flat folder, their headers
checked cheaply, and ``.gz`` files unpacked once into a cache that torchvision can read; the
person's folder is never written into."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from dissect.infra.errors import AuditError

__all__ = [
    "IDX_FILES",
    "FOLDER",
    "cache_root",
    "find_idx",
    "source_files",
    "unpack",
    "check_idx_header",
    "to_tensors",
]

#: The four files of MNIST and Fashion-MNIST, as published (each also found as ``NAME.gz``).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
STAMP = ".source.json"


def to_tensors(images: np.ndarray | torch.Tensor, labels) -> tuple[torch.Tensor, torch.Tensor]:
    x = (
        torch.as_tensor(np.asarray(images), dtype=torch.float32, device="cpu").reshape(
            -1, 1, 28, 28
        )
        / 255.0
    )
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device="cpu")
    return x.contiguous(), y


def cache_root() -> Path:
    """Where unpacked copies of data sets go: ``$XDG_CACHE_HOME/convnet-audit`` (default
    ``~/.cache/convnet-audit``). A data folder given by a person is never written into."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convnet-audit"


def find_idx(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (each unpacked, else ``.gz``), or None if one lacks."""
    found = {}
    for name in IDX_FILES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            return None
    return found


def layout_hint(name: str) -> str:
    folder = FOLDER[name]
    return (
        f"expected {folder}/raw/ as torchvision lays it out, or a folder holding the four files "
        f"{', '.join(IDX_FILES)} (each may end in .gz)"
    )


def source_files(name: str, data_dir: str) -> tuple[Path, dict[str, Path]]:
    """The folder holding ``name``'s four IDX files inside ``data_dir``, and the files.

    Looked for in torchvision's layout (``DIR/MNIST/raw``, ``DIR/FashionMNIST/raw``), in
    ``DIR/raw`` (DIR is torchvision's class folder) and in ``DIR`` itself (a flat folder)."""
    base = Path(data_dir).expanduser()
    if not base.exists():
        raise AuditError(
            f"data folder {data_dir!r} does not exist: check --data-dir ({layout_hint(name)})"
        )
    if not base.is_dir():
        raise AuditError(f"--data-dir {data_dir!r} is a file, not a folder: give the folder")
    for folder in (base / FOLDER[name] / "raw", base / "raw", base):
        found = find_idx(folder)
        if found is not None:
            return folder, found
    raise AuditError(
        f"data set {name!r} not found in {data_dir!r}: {layout_hint(name)}; "
        + ("add --download on a machine with internet" if name == "mnist" else "see the README")
    )


def _stamp(files: dict[str, Path]) -> dict[str, list]:
    out = {}
    for name, path in files.items():
        st = path.stat()
        out[name] = [str(path.resolve()), st.st_size, st.st_mtime_ns]
    return out


def unpack(name: str, files: dict[str, Path], cache: Path) -> Path:
    """A torchvision root under ``cache`` whose ``MNIST/raw`` (or ``FashionMNIST/raw``) holds
    the four files: ``.gz`` ones unpacked, plain ones linked (or copied). Rebuilt when the
    sources change; written atomically, so that processes started together agree."""
    from dissect.infra.atomic import atomic_path, atomic_write_text

    raw = cache / FOLDER[name] / "raw"
    stamp = _stamp(files)
    try:
        if json.loads((raw / STAMP).read_text()) == stamp:
            return cache
    except (OSError, ValueError):
        pass
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for stem, src in files.items():
            if src.suffix != ".gz":
                _link(src, raw / stem)
                continue
            with atomic_path(raw / stem) as tmp, gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:  # fmt: skip
                shutil.copyfileobj(fin, fout)
        atomic_write_text(raw / STAMP, json.dumps(stamp))
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise AuditError(
            f"data set {name!r}: {str(src)!r} is not a complete gzip file ({exc}): "
            "download it again"
        ) from exc
    except OSError as exc:
        raise AuditError(
            f"cannot unpack data set {name!r} into the cache {str(cache)!r} ({exc.strerror or exc}): "
            "set XDG_CACHE_HOME to a folder you can write"
        ) from exc
    return cache


def _link(src: Path, target: Path) -> None:
    """``target`` becomes a symbolic link to ``src`` (a copy where links are not allowed),
    replaced atomically; ``src`` is only read."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(src.resolve(), tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def check_idx_header(path: Path, images: bool) -> int:
    """Read an IDX file's header (cheap, also for ``.gz``); return its item count."""
    opener = gzip.open if path.suffix == ".gz" else open
    want = 16 if images else 8
    try:
        with opener(path, "rb") as f:
            head = f.read(want)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path.name} cannot be read ({exc})") from exc
    if len(head) < want:
        raise ValueError(f"{path.name} is truncated")
    magic, count = struct.unpack(">II", head[:8])
    if magic != (0x803 if images else 0x801):
        raise ValueError(f"{path.name} is not an IDX {'image' if images else 'label'} file")
    if images and struct.unpack(">II", head[8:16]) != (28, 28):
        rows, cols = struct.unpack(">II", head[8:16])
        raise ValueError(f"{path.name} holds {rows}x{cols} images, not 28x28")
    if path.suffix != ".gz" and path.stat().st_size < want + count * (784 if images else 1):
        raise ValueError(f"{path.name} is truncated")
    return count
