"""The two steps of this package, each one function that both its command
(``simpleconvnet train`` / ``simpleconvnet prune``) and the report's pipeline call.

A step takes a typed config, the output folder, the device and ``quiet``; it writes its
checkpoints (rank 0) and returns a typed outcome, with the line(s) the command prints. Option
checks, ``--force`` and printing stay with the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from dissect.infra.checkpoints import CheckpointMeta, load_checkpoint_data
from dissect.infra.datasets import load_split, split_validation
from simpleconvnet.checkpoint import load_model
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.prune import PruneConfig, PruneResult, choose_at_random, choose_by_score, prune
from simpleconvnet.train import TrainConfig, describe_best, fit

__all__ = ["TrainStep", "TrainOutcome", "train_step", "PruneStep", "PruneOutcome", "prune_step"]

KIND = "SimpleConvNet"


@dataclass(frozen=True)
class TrainStep:
    """Train a SimpleConvNet of ``widths`` (2 or 3 conv layers) and ``fc4`` on ``dataset``.

    ``training.seed`` seeds the initial weights as well as the training (order, augmentation);
    ``download`` fetches MNIST into ``data_dir``; ``resume`` continues from ``OUT/last``.
    """

    dataset: str = "mnist-5k"
    data_dir: str | None = None
    widths: tuple[int, ...] = (32, 64, 128)
    fc4: int = 128
    training: TrainConfig = field(default_factory=TrainConfig)
    download: bool = False
    resume: bool = False


@dataclass(frozen=True)
class TrainOutcome:
    """``checkpoint``: the last epoch's folder (``OUT/last``; ``OUT/best`` beside it is the
    epoch ``best_epoch`` that scored best on the validation split); ``accuracy`` and
    ``best_accuracy``: their accuracies on the test split; ``best_val_accuracy``: ``best/``'s
    on the validation split."""

    checkpoint: Path
    accuracy: float
    best_accuracy: float
    seconds: float
    message: str  # what ``simpleconvnet train`` prints
    best_val_accuracy: float | None = None
    best_epoch: int = 0


def train_step(
    config: TrainStep, out_dir: str | Path, device: torch.device, quiet: bool
) -> TrainOutcome:
    """Load the data set, build and seed the model, train it into ``out_dir`` (``last/``,
    ``best/``, ``history.csv``, ``confusion.csv``, ``snapshots.safetensors``): fitted on the
    training split less its validation digits, which choose ``best/``
    (:func:`dissect.infra.datasets.split_validation`)."""
    full = load_split(config.dataset, "train", config.data_dir, config.download)
    train, val = split_validation(*full, config.dataset)
    test = load_split(config.dataset, "test", config.data_dir, False)
    model = SimpleConvNet(SimpleConvNetConfig(convs=config.widths, fc4=config.fc4))
    init_weights(model, torch.Generator().manual_seed(config.training.seed))
    model.to(device)
    meta = CheckpointMeta(
        kind=KIND, mode="trained", data={"name": config.dataset, "data_dir": config.data_dir}
    )
    result = fit(
        model, train, test, config.training, val=val, out_dir=out_dir, metadata=meta,
        resume=config.resume, quiet=quiet,
    )  # fmt: skip
    message = (
        f"SimpleConvNet {model.config.convs} on {config.dataset}: test accuracy "
        f"{result.final.accuracy:.2%} after {result.epochs_run} epoch(s), {result.seconds:.1f} s; "
        f"{describe_best(result)}; checkpoints in {out_dir}/"
    )
    return TrainOutcome(
        checkpoint=Path(out_dir) / "last",
        accuracy=result.final.accuracy,
        best_accuracy=result.best_accuracy,
        seconds=result.seconds,
        message=message,
        best_val_accuracy=result.best_val_accuracy,
        best_epoch=result.best_epoch,
    )


@dataclass(frozen=True)
class PruneStep:
    """Prune the SimpleConvNet checkpoint ``source`` (a folder, as given) with ``pruning``;
    ``random`` chooses channels at random (a baseline, seeded by ``pruning.seed``);
    ``resume`` continues after the last finished iteration in the output folder."""

    source: str | Path
    pruning: PruneConfig = field(default_factory=PruneConfig)
    random: bool = False
    resume: bool = False


@dataclass(frozen=True)
class PruneOutcome:
    """``checkpoint``: the final pruned net (``OUT/final``); ``accuracy``: its test accuracy
    after the last retraining; ``parameters_kept``: its share of the source's parameters;
    ``redundancy``: whether conv3 was found redundant (``redundant``, ``evidence``,
    ``mean_best_correlation``)."""

    checkpoint: Path
    accuracy: float
    parameters_kept: float
    widths: list[int]
    redundancy: dict[str, Any]
    message: str  # what ``simpleconvnet prune`` prints


def prune_step(
    config: PruneStep, out_dir: str | Path, device: torch.device, quiet: bool
) -> PruneOutcome:
    """Load ``config.source`` and the data set it was trained on, then score, cut and retrain
    into ``out_dir`` (``iter_K/``, ``final/``, ``history.csv``, ``scores.csv``,
    ``redundancy.json``); see :func:`simpleconvnet.prune.prune`."""
    model, source = load_model(config.source, SimpleConvNet, map_location=device)
    train, val = split_validation(*load_checkpoint_data(source, "train"), source.data["name"])
    test = load_checkpoint_data(source, "test")
    before = sum(p.numel() for p in model.parameters())
    meta = CheckpointMeta(kind=KIND, data=source.data, parent=str(Path(config.source).resolve()))
    chooser = choose_at_random(config.pruning.seed) if config.random else choose_by_score
    pruning = replace(config.pruning, dataset=source.data["name"])
    result = prune(
        model, train, test, pruning, val=val, out_dir=out_dir, metadata=meta, chooser=chooser,
        resume=config.resume, quiet=quiet,
    )  # fmt: skip
    after = sum(p.numel() for p in result.model.parameters())
    return PruneOutcome(
        checkpoint=Path(out_dir) / "final",
        accuracy=float(result.history["accuracy_after_retraining"].iloc[-1]),
        parameters_kept=after / before,
        widths=list(result.model.config.convs),
        redundancy=redundancy_summary(result.redundancy),
        message=_prune_message(result, out_dir),
    )


def redundancy_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The conv3 test's finding as a report reads it, from what pruning records
    (``redundancy.json``, or a pruned checkpoint's ``redundancy``)."""
    return {
        "redundant": bool(report.get("dropped")),
        "evidence": str(report.get("reason", "")),
        "mean_best_correlation": (report.get("layers") or {})
        .get("conv3", {})
        .get("mean_best_correlation"),
    }


def _prune_message(result: PruneResult, out_dir: str | Path) -> str:
    h = result.history
    return (
        f"{result.redundancy.get('reason', '')}\n"
        f"pruned to {h['widths'].iloc[-1]}: accuracy {h['accuracy_before_cut'].iloc[0]:.2%} -> "
        f"{h['accuracy_after_retraining'].iloc[-1]:.2%}, conv parameters "
        f"{h['conv_parameters'].iloc[0]:,} -> {h['conv_parameters'].iloc[-1]:,}; in {Path(out_dir)}/"
    )
