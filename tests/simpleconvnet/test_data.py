import torch

from simpleconvnet.data import augment


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
