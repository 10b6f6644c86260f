"""Shared fixtures: tiny data sets written as real IDX files, read back by torchvision."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format MNIST uses (big-endian header)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    path.write_bytes(header + array.tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 images of 10 easily told apart classes: a bright bar whose position and
    orientation depend on the class, with noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        pos = 3 + 2 * k
        if k % 2:
            images[i, :, pos : pos + 3] = 230
        else:
            images[i, pos : pos + 3, :] = 230
    return images, labels.astype(np.uint8)


def make_mnist_folder(root: Path, n_train: int = 200, n_test: int = 100) -> Path:
    """A folder laid out as torchvision's MNIST expects (``root/MNIST/raw``)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture()
def mnist_dir(tmp_path: Path) -> Path:
    return make_mnist_folder(tmp_path / "data")


@pytest.fixture()
def tiny_data(mnist_dir: Path):
    from dissect.infra.datasets import load_split

    return load_split("mnist", "train", str(mnist_dir)), load_split("mnist", "test", str(mnist_dir))
