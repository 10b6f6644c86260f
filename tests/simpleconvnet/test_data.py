from pathlib import Path

import numpy as np
import pytest
import torch

from dissect.errors import AuditError
from simpleconvnet.data import augment, load_split, mnist5k_indices


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


def test_augment_depends_on_sample_not_on_batch_position() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 1, 28, 28, generator=g)
    idx = torch.tensor([10, 11, 12, 13, 14, 15])
    whole = augment(images, idx, seed=3, epoch=2, n_total=20)
    part = augment(images[[4, 1]], idx[[4, 1]], seed=3, epoch=2, n_total=20)
    assert torch.equal(whole[[4, 1]], part)
    other_epoch = augment(images, idx, seed=3, epoch=3, n_total=20)
    assert not torch.equal(whole, other_epoch)
    assert whole.shape == images.shape
