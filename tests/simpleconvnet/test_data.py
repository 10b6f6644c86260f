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


def test_clothes_augmentation_flips_and_shifts_whole_pixels() -> None:
    from simpleconvnet.data import augment_clothes

    images = torch.zeros(64, 1, 28, 28)
    images[:, 0, 10, 5] = 1.0  # one lit pixel, left of centre
    out = augment_clothes(images, torch.arange(64), seed=0, epoch=0, n_total=64)
    flipped = 0
    for picture in out[:, 0]:
        lit = picture.nonzero().tolist()
        assert len(lit) == 1 and picture.sum() == 1.0  # moved, never blurred
        row, col = lit[0]
        assert abs(row - 10) <= 2
        mirrored = col > 13
        flipped += mirrored
        assert abs(col - (27 - 5 if mirrored else 5)) <= 2
    assert 16 < flipped < 48  # about half the samples mirrored


def test_elastic_warp_is_per_sample_and_moves_pixels() -> None:
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4, 1, 28, 28, generator=g)
    idx = torch.arange(4)
    plain = augment(images, idx, seed=0, epoch=0, n_total=4)
    warped = augment(images, idx, seed=0, epoch=0, n_total=4, elastic=2.0)
    again = augment(images[[2]], idx[[2]], seed=0, epoch=0, n_total=4, elastic=2.0)
    assert torch.equal(warped[[2]], again)
    assert (warped - plain).abs().mean() > 1e-3


def test_auto_augmentation_follows_the_data_set() -> None:
    from simpleconvnet.data import augmentation_for

    assert augmentation_for(True, "fashion-mnist") == "clothes"
    assert augmentation_for("auto", "mnist-5k") == "digits"
    assert augmentation_for(False, "fashion-mnist") == "none"
    assert augmentation_for("digits", "fashion-mnist") == "digits"


def test_label_smoothing_follows_the_data_set_unless_given() -> None:
    from simpleconvnet.data import smoothing_for

    assert smoothing_for(None, "fashion-mnist") == 0.1
    assert smoothing_for(None, "mnist-5k") == 0.0
    assert smoothing_for(0.2, "mnist-5k") == 0.2
    assert smoothing_for(0.0, "fashion-mnist") == 0.0
