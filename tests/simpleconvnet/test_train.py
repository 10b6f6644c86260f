import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import simpleconvnet.train as train_module
from dissect.infra.errors import AuditError
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.train import (
    EvalResult,
    TrainConfig,
    evaluate,
    fit,
    one_cycle_lr,
    should_stop,
)

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


def _scripted_evaluation(monkeypatch, val, scripted: dict[str, list[float]]) -> None:
    """``evaluate`` inside the training loop returns the accuracies ``scripted`` per split
    (``val`` told apart from ``test`` by its images), epoch after epoch."""
    calls = {"val": 0, "test": 0}

    def fake(model, images, labels, batch_size=1000) -> EvalResult:
        split = "val" if images is val[0] else "test"
        acc = scripted[split][calls[split]]
        calls[split] += 1
        frame = pd.DataFrame(np.zeros((10, 10), dtype=np.int64))
        return EvalResult(loss=1 - acc, accuracy=acc, per_class=[acc] * 10, confusion=frame)

    monkeypatch.setattr(train_module, "evaluate", fake)


def test_best_follows_validation_not_test(tiny_data, tmp_path: Path, monkeypatch) -> None:
    train, test = tiny_data
    val = (train[0][:20].clone(), train[1][:20].clone())
    _scripted_evaluation(monkeypatch, val, {"test": [0.9, 0.5, 0.6], "val": [0.3, 0.8, 0.7]})
    config = TrainConfig(epochs=3, batch_size=50, seed=0, snapshot_every=0)
    result = fit(_model(), train, test, config, val=val, out_dir=tmp_path, quiet=True)
    assert (result.best_epoch, result.best_val_accuracy, result.best_accuracy) == (2, 0.8, 0.5)
    best = json.loads((tmp_path / "best" / "model.json").read_text())
    assert best["epoch"] == 2 and best["metrics"]["best_val_accuracy"] == 0.8
    last = json.loads((tmp_path / "last" / "model.json").read_text())["metrics"]
    assert last["test_accuracy"] == 0.6 and last["val_accuracy"] == 0.7 and last["best_epoch"] == 2
    assert "best_test_accuracy" not in last
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns[5:9]) == ["test_loss", "test_accuracy", "val_loss", "val_accuracy"]
    assert list(history["test_accuracy"]) == [0.9, 0.5, 0.6]


def test_patience_stops_and_resume_agrees(tiny_data, tmp_path: Path, monkeypatch) -> None:
    train, test = tiny_data
    val = (train[0][:20].clone(), train[1][:20].clone())
    _scripted_evaluation(monkeypatch, val, {"test": [0.5] * 10, "val": [0.5, 0.6, 0.6, 0.55] * 3})
    config = TrainConfig(epochs=10, batch_size=50, seed=0, snapshot_every=0, patience=2)
    result = fit(_model(), train, test, config, val=val, out_dir=tmp_path, quiet=True)
    assert result.epochs_run == 4 and result.best_epoch == 2  # epochs 3 and 4 did not improve
    again = fit(_model(), train, test, config, val=val, out_dir=tmp_path, quiet=True, resume=True)
    assert again.epochs_run == 4 and len(again.history) == 4


def test_should_stop_at_a_validation_target() -> None:
    rows = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}]
    assert should_stop(rows, TrainConfig(stop_at_val_accuracy=0.7))
    assert not should_stop(rows, TrainConfig(stop_at_val_accuracy=0.71))
    assert not should_stop(rows, TrainConfig(patience=1))
    assert not should_stop([{"epoch": 1, "test_accuracy": 0.9}], TrainConfig(patience=1))
    with pytest.raises(AuditError, match="--patience"):
        TrainConfig(patience=0)


def test_label_smoothing_loss_is_cross_entropy_against_smoothed_targets() -> None:
    from simpleconvnet.train import _loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 10, generator=g)
    target = torch.tensor([0, 3, 9, 3, 1])
    log_p = torch.log_softmax(logits, dim=1)
    expected = torch.nn.functional.cross_entropy(
        logits, target, label_smoothing=0.1, reduction="sum"
    )
    assert torch.allclose(_loss(log_p, target, 0.1), expected, atol=1e-5)
    assert torch.allclose(
        _loss(log_p, target, 0.0), torch.nn.functional.nll_loss(log_p, target, reduction="sum")
    )


def test_unknown_augmentation_and_bad_smoothing_are_refused() -> None:
    from dissect.infra.errors import AuditError

    with pytest.raises(AuditError, match="augment"):
        TrainConfig(augment="rotate")
    with pytest.raises(AuditError, match="label-smoothing"):
        TrainConfig(label_smoothing=1.5)
