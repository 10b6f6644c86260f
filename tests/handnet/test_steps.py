"""The steps the command line and the pipeline share: what they write and return."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data, read_metadata
from dissect.infra.errors import AuditError
from handnet.finetune import FINETUNE_LR
from handnet.model import HandNet
from handnet.steps import BuildStep, FinetuneStep, build_step, finetune_step
from simpleconvnet.train import TrainConfig, evaluate

CPU = torch.device("cpu")
TRAINING = TrainConfig(epochs=1, batch_size=50, augment=False, snapshot_every=0)


def _build(mnist_dir: Path, out: Path, widths: tuple[int, ...] = (8, 16)):
    config = BuildStep(dataset="mnist", widths=widths, fc4=16, data_dir=str(mnist_dir))
    return build_step(config, out, CPU, True)


def test_build_step_saves_a_measured_hand_built_net(mnist_dir: Path, tmp_path: Path) -> None:
    outcome = _build(mnist_dir, tmp_path / "built", (4, 8, 6))
    assert outcome.checkpoint == tmp_path / "built" and outcome.widths == (4, 8, 6)
    assert set(outcome.head) == {"train_accuracy", "l2", "copies", "fit_digits"}
    assert "hand-built on mnist" in outcome.message
    model, meta = load_checkpoint(outcome.checkpoint)
    assert isinstance(model, HandNet) and model.config.convs == (4, 8, 6)
    assert (meta.kind, meta.mode, meta.parent, meta.world_size) == (
        "HandNet",
        "hand-built",
        None,
        1,
    )
    assert meta.data == {"name": "mnist", "data_dir": str(mnist_dir)} and meta.versions
    # the accuracy recorded is the suite's evaluation of the saved net on the test digits
    expected = evaluate(model, *load_checkpoint_data(meta, "test")).accuracy
    assert meta.metrics["accuracy"] == outcome.accuracy == pytest.approx(expected)
    assert meta.extra["head_fit"]["train_accuracy"] == outcome.head["train_accuracy"]
    assert meta.extra["head_fit"]["l2"] == outcome.head["l2"]
    assert meta.extra["head_fit"]["copies"] == outcome.head["copies"]


def test_finetune_step_writes_checkpoints_and_drift(mnist_dir: Path, tmp_path: Path) -> None:
    built = _build(mnist_dir, tmp_path / "built").checkpoint
    config = FinetuneStep(str(built), "constrained", TRAINING)
    outcome = finetune_step(config, tmp_path / "tuned", CPU, True)
    assert outcome.checkpoint == tmp_path / "tuned" / "last" and outcome.trainable_parameters > 0
    assert (tmp_path / "tuned" / "drift.csv").read_text().count("\n") == 25
    meta = read_metadata(outcome.checkpoint)
    assert (meta.mode, meta.parent, meta.seed) == ("constrained", str(built), 0)
    assert meta.metrics["accuracy"] == outcome.accuracy and meta.data["name"] == "mnist"
    assert FinetuneStep("x", "free").training.lr == FINETUNE_LR


def test_an_old_built_checkpoint_still_fine_tunes(mnist_dir: Path, tmp_path: Path) -> None:
    """A file written before the typed metadata (``"stage"``, no version) loads as its mode."""
    built = _build(mnist_dir, tmp_path / "built").checkpoint
    raw = json.loads((built / "model.json").read_text())
    raw["stage"] = raw.pop("mode")
    for key in ("version", "parent", "world_size", "seed"):
        raw.pop(key)
    (built / "model.json").write_text(json.dumps(raw))
    assert read_metadata(built).mode == "hand-built"
    outcome = finetune_step(FinetuneStep(built, "free", TRAINING), tmp_path / "free", CPU, True)
    assert read_metadata(outcome.checkpoint).mode == "free"


def test_finetune_step_refuses_a_freed_net(mnist_dir: Path, tmp_path: Path) -> None:
    built = _build(mnist_dir, tmp_path / "built").checkpoint
    tuned = finetune_step(FinetuneStep(built, "free", TRAINING), tmp_path / "free", CPU, True)
    with pytest.raises(AuditError, match="already freed"):
        finetune_step(FinetuneStep(tuned.checkpoint, "free", TRAINING), tmp_path / "x", CPU, True)
