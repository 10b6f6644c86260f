"""``mnist`` and ``fashion-mnist`` read by torchvision's own loaders: from ``--data-dir`` (its
IDX files found and unpacked by :mod:`dissect.infra.idx`), downloaded with ``--download``, or,
for ``fashion-mnist`` without a folder, from Debian's ``dataset-fashion-mnist`` install."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from dissect.infra.errors import AuditError
from dissect.infra.idx import (
    FOLDER,
    cache_root,
    check_idx_header,
    find_idx,
    source_files,
    to_tensors,
    unpack,
)

__all__ = ["DEBIAN_FASHION_DIR", "torchvision_root", "load_torchvision", "check_idx_data"]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _data_key(folder: Path) -> str:
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]


def torchvision_root(name: str, data_dir: str | None) -> Path:
    """The root to hand torchvision for ``name``, reading ``data_dir`` without writing there.

    torchvision reads only unpacked files in ``ROOT/MNIST/raw``: a folder already laid out so
    is used as it is; otherwise (``.gz`` files, a flat folder) the files are unpacked once into
    ``cache_root()/data/<hash of the folder's path>/``. With no folder, ``fashion-mnist`` comes
    from Debian's ``dataset-fashion-mnist`` package, unpacked into ``cache_root()``."""
    if data_dir is None:
        if name == "mnist":
            raise AuditError(
                "data set 'mnist' needs --data-dir (a folder holding MNIST/raw as torchvision "
                "lays it out, or the four *-ubyte.gz files); add --download on a machine with "
                "internet, or use --dataset mnist-5k"
            )
        files = find_idx(DEBIAN_FASHION_DIR) if DEBIAN_FASHION_DIR.is_dir() else None
        if files is None:
            raise AuditError(
                "data set 'fashion-mnist' not found: no --data-dir given and Debian's package "
                f"is not installed at {DEBIAN_FASHION_DIR}; run 'apt-get install "
                "dataset-fashion-mnist' or pass --data-dir with the FashionMNIST files"
            )
        return unpack(name, files, cache_root())
    folder, files = source_files(name, data_dir)
    base = Path(data_dir).expanduser()
    if folder == base / FOLDER[name] / "raw" and all(p.suffix != ".gz" for p in files.values()):
        return base
    return unpack(name, files, cache_root() / "data" / _data_key(folder))


def check_idx_data(name: str, data_dir: str | None, download: bool) -> None:
    """:func:`dissect.infra.datasets.check_data` for ``mnist`` and ``fashion-mnist``."""
    if download:
        if data_dir is None:
            raise AuditError("--download needs --data-dir: the folder to download into")
        return
    if data_dir is None and name == "mnist":
        torchvision_root(name, None)  # raises: mnist needs a folder
    if data_dir is None:
        files = find_idx(DEBIAN_FASHION_DIR) if DEBIAN_FASHION_DIR.is_dir() else None
        if files is None:
            torchvision_root(name, None)  # raises with the Debian hint
        folder = DEBIAN_FASHION_DIR
    else:
        folder, files = source_files(name, data_dir)
    assert files is not None
    try:
        counts = {stem: check_idx_header(p, "images" in stem) for stem, p in files.items()}
    except ValueError as exc:
        raise AuditError(
            f"data set {name!r} is missing or corrupt in {str(folder)!r} ({exc}): replace the file"
        ) from None
    for split in ("train", "t10k"):
        if counts[f"{split}-images-idx3-ubyte"] != counts[f"{split}-labels-idx1-ubyte"]:
            raise AuditError(
                f"data set {name!r} in {str(folder)!r}: {split}-images holds "
                f"{counts[f'{split}-images-idx3-ubyte']} images but {split}-labels "
                f"{counts[f'{split}-labels-idx1-ubyte']} labels: replace the files"
            )


def load_torchvision(
    name: str, split: str, data_dir: str | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    if download:
        if data_dir is None:
            raise AuditError("--download needs --data-dir: the folder to download into")
        root = Path(data_dir)
    else:
        root = torchvision_root(name, data_dir)
    hint = (
        "add --download on a machine with internet"
        if name == "mnist"
        else "install Debian's dataset-fashion-mnist or pass --data-dir"
    )
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
        images, labels = ds.data.numpy(), ds.targets.numpy()
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"images of shape {tuple(images.shape[1:])}, not 28x28")
        if labels.shape != (len(images),):
            raise ValueError(f"{len(images)} images but {labels.size} labels")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
            raise ValueError("labels outside 0-9")
        return to_tensors(images, labels)
    except (RuntimeError, AssertionError, ValueError, TypeError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditError(
            f"data set {name!r} is missing or corrupt in {str(root)!r} ({reason}): {hint}"
        ) from exc
