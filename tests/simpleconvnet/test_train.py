from pathlib import Path

import pytest
import torch

from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.train import TrainConfig, evaluate, fit, one_cycle_lr

CONFIG = TrainConfig(epochs=2, batch_size=50, lr=3e-3, seed=1, snapshot_every=3)


def _model() -> SimpleConvNet:
    m = SimpleConvNet(SimpleConvNetConfig(convs=(4, 6), fc4=16))
    init_weights(m, torch.Generator().manual_seed(1))
    return m


def _weights(folder: Path) -> bytes:
    return (folder / "last" / "model.safetensors").read_bytes()


def test_training_learns_and_writes_everything(tiny_data, tmp_path: Path) -> None:
    result = fit(
        _model(),
        *tiny_data,
        TrainConfig(epochs=3, batch_size=20, seed=0),
        out_dir=tmp_path,
        quiet=True,
    )
    assert result.final.accuracy > 0.5  # ten easy classes, chance is 0.1
    assert list(result.history["epoch"]) == [1, 2, 3]
    names = {p.name for p in tmp_path.iterdir()}
    assert {"last", "best", "history.csv", "confusion.csv", "snapshots.safetensors"} <= names
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_same_seed_gives_byte_identical_weights(tiny_data, tmp_path: Path) -> None:
    fit(_model(), *tiny_data, CONFIG, out_dir=tmp_path / "a", quiet=True)
    fit(_model(), *tiny_data, CONFIG, out_dir=tmp_path / "b", quiet=True)
    assert _weights(tmp_path / "a") == _weights(tmp_path / "b")
    other = TrainConfig(**{**CONFIG.__dict__, "seed": 2})
    fit(_model(), *tiny_data, other, out_dir=tmp_path / "c", quiet=True)
    assert _weights(tmp_path / "a") != _weights(tmp_path / "c")


def test_resume_after_interruption_ends_where_uninterrupted_run_does(
    tiny_data, tmp_path: Path
) -> None:
    fit(_model(), *tiny_data, CONFIG, out_dir=tmp_path / "whole", quiet=True)

    def interrupt(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            _model(),
            *tiny_data,
            CONFIG,
            out_dir=tmp_path / "cut",
            quiet=True,
            on_epoch_end=interrupt,
        )
    result = fit(_model(), *tiny_data, CONFIG, out_dir=tmp_path / "cut", quiet=True, resume=True)
    assert _weights(tmp_path / "whole") == _weights(tmp_path / "cut")
    assert list(result.history["epoch"]) == [1, 2]
    a = (tmp_path / "whole" / "snapshots.safetensors").read_bytes()
    assert a == (tmp_path / "cut" / "snapshots.safetensors").read_bytes()


def test_evaluate_counts_every_image(tiny_data) -> None:
    _, (x, y) = tiny_data
    result = evaluate(_model(), x, y, batch_size=7)
    assert int(result.confusion.values.sum()) == len(y)
    assert result.confusion.values.sum(1).tolist() == torch.bincount(y).tolist()
    diag = sum(result.confusion.values[k, k] for k in range(10))
    assert result.accuracy == pytest.approx(diag / len(y))


def test_one_cycle_schedule_shape() -> None:
    lrs = [one_cycle_lr(s, 100, 1.0) for s in range(101)]
    assert lrs[0] == pytest.approx(0.04) and max(lrs) == pytest.approx(1.0)
    assert lrs.index(max(lrs)) == 25 and lrs[-1] == pytest.approx(1e-4)
