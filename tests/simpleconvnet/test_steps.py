"""The train and prune steps that both the command line and the pipeline call."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dissect.infra.checkpoints import read_metadata
from dissect.infra.distributed import sharded_sum
from simpleconvnet.prune import PruneConfig
from simpleconvnet.steps import PruneStep, TrainStep, prune_step, train_step
from simpleconvnet.train import TrainConfig


def test_train_then_prune_steps_write_typed_checkpoints(mnist_dir: Path, tmp_path: Path) -> None:
    training = TrainConfig(epochs=2, batch_size=20, seed=3, snapshot_every=0)
    step = TrainStep(dataset="mnist", data_dir=str(mnist_dir), widths=(6, 8), fc4=16, training=training)  # fmt: skip
    trained = train_step(step, tmp_path / "run", torch.device("cpu"), quiet=True)
    assert trained.checkpoint == tmp_path / "run" / "last"
    meta = read_metadata(trained.checkpoint)
    assert (meta.kind, meta.mode, meta.seed, meta.world_size, meta.epoch) == ("SimpleConvNet", "trained", 3, 1, 2)  # fmt: skip
    assert meta.metrics["accuracy"] == trained.accuracy == meta.history[-1]["test_accuracy"]
    assert meta.extra["train_config"]["seed"] == 3 and meta.data["name"] == "mnist"
    best = read_metadata(tmp_path / "run" / "best")  # chosen on the 20 validation digits
    assert best.epoch == trained.best_epoch and meta.metrics["best_epoch"] == trained.best_epoch
    assert (
        trained.best_val_accuracy
        == meta.metrics["best_val_accuracy"]
        == max(row["val_accuracy"] for row in meta.history)
    )
    assert trained.best_accuracy == best.metrics["test_accuracy"]
    assert trained.message.startswith("SimpleConvNet (6, 8) on mnist: test accuracy")

    pruning = PruneConfig(iterations=1, targets=(3, 4), weights={"variation": 1.0}, epochs=1,
                          final_epochs=1, score_images=50)  # fmt: skip
    source = str(trained.checkpoint)
    pruned = prune_step(PruneStep(source, pruning), tmp_path / "pruned", torch.device("cpu"), True)
    assert pruned.checkpoint == tmp_path / "pruned" / "final" and pruned.widths == [3, 4]
    kept = (3 * 25 + 3 + 4 * 3 * 25 + 4 + 4 * 49 * 16 + 16 + 16 * 10 + 10) / (
        6 * 25 + 6 + 8 * 6 * 25 + 8 + 8 * 49 * 16 + 16 + 16 * 10 + 10
    )
    assert pruned.parameters_kept == pytest.approx(kept)
    assert pruned.redundancy == {
        "redundant": False, "evidence": "no third conv layer to test", "mean_best_correlation": None,
    }  # fmt: skip
    for folder in ("iter_1", "final"):
        meta = read_metadata(tmp_path / "pruned" / folder)
        assert (meta.kind, meta.mode, meta.parent) == ("SimpleConvNet", "pruned", source)
        assert meta.data["name"] == "mnist" and "torch" in meta.versions
    assert meta.metrics == {"accuracy": pruned.accuracy}
    reason, summary = pruned.message.split("\n")
    assert reason == "no third conv layer to test" and summary.startswith("pruned to 3/4:")


def test_sharded_sum_sums_each_tensor_of_a_tuple() -> None:
    x = torch.arange(12.0).reshape(6, 2)
    y = torch.arange(6)
    total, count = sharded_sum(lambda a, b: (a.sum(0), (b >= 0).sum()), x, y, batch_size=4)
    assert total.tolist() == [30.0, 36.0] and total.dtype == torch.float64
    assert float(count) == 6.0
    single = sharded_sum(lambda a: a.sum(0), x, batch_size=4)
    assert isinstance(single, torch.Tensor) and torch.equal(single, total)
