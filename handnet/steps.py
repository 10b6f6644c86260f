"""HandNet's two steps, each one function that both its command (``handnet build``,
``handnet finetune``) and the report's pipeline call, so that both write the same files.

- :func:`build_step`: HandNet of the given widths from analytic filters and written rules, its
  head fitted in closed form on the training digits, saved as a ``hand-built`` checkpoint;
- :func:`finetune_step`: a built HandNet fine-tuned ``constrained`` or ``free``, with
  ``drift.csv`` (how far every filter moved, :func:`~handnet.finetune.filter_drift`).

A step takes a typed config, the output folder, the device and ``quiet``; it writes its files
(rank 0) and returns a typed outcome, with the line the command prints. Option checks,
``--force`` and printing stay with the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dissect.infra import distributed as dist
from dissect.infra.atomic import atomic_save
from dissect.infra.checkpoints import (
    CheckpointMeta,
    load_checkpoint,
    load_checkpoint_data,
    save_model,
)
from dissect.infra.datasets import load_split, split_validation
from dissect.infra.errors import AuditError
from handnet.finetune import (
    FINETUNE_LR,
    FINETUNE_PATIENCE,
    filter_drift,
    finetune,
    trainable_parameters,
)
from handnet.head import HeadFit, choose_l2, fit_head, head_copies, set_head
from handnet.model import HandNet, default_config
from simpleconvnet.train import TrainConfig, describe_best, evaluate

__all__ = [
    "BuildStep",
    "BuildOutcome",
    "build_handnet",
    "build_step",
    "FinetuneStep",
    "FinetuneOutcome",
    "check_built",
    "finetune_step",
]

HEAD_FIT_METHOD = (
    "multinomial logistic regression (L-BFGS), conv layers frozen, on the training digits and "
    "augmented copies"
)


@dataclass(frozen=True)
class BuildStep:
    """What to build: the data set (its training digits fit the head, its test digits measure
    the net), the conv ``widths`` (at most 16 filters and 48 rules; a third width, at most the
    second, adds conv3), the width of ``fc4`` and the ``l2`` penalty of the head fit (``None``:
    the one of :data:`handnet.head.HEAD_L2` the validation digits choose)."""

    dataset: str = "mnist-5k"
    widths: tuple[int, ...] = (8, 16)
    fc4: int = 128
    l2: float | None = None
    data_dir: str | None = None
    download: bool = False


@dataclass(frozen=True)
class BuildOutcome:
    """The checkpoint folder written, the head fit's scalar fields (``train_accuracy``, the
    ``l2`` penalty, how many ``copies`` of how many ``fit_digits``), the widths built and the
    test accuracy."""

    checkpoint: Path
    head: dict[str, Any]
    widths: tuple[int, ...]
    accuracy: float
    message: str  # what ``handnet build`` prints


def build_handnet(
    widths: tuple[int, ...],
    fc4: int,
    train: tuple[torch.Tensor, torch.Tensor],
    l2: float | None = None,
    device: str | torch.device = "cpu",
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    dataset: str | None = None,
) -> tuple[HandNet, HeadFit, float]:
    """The hand-built HandNet of ``widths`` on ``device`` with its head fitted on ``train``
    (``images [N, 1, 28, 28]``, ``labels [N]``) and their augmented copies as ``dataset``
    trains (:func:`handnet.head.fit_head`; none without ``dataset``), its L2 penalty ``l2`` or,
    when that is None, the one the ``val`` digits choose (:func:`handnet.head.choose_l2`).
    Returns ``(model, HeadFit, l2)``."""
    try:
        model = HandNet(default_config(widths, fc4)).to(device)
    except ValueError as exc:
        raise AuditError(f"--widths: {exc}") from None
    images, labels = train[0].to(device), train[1].to(device)
    copies = head_copies(len(labels)) if dataset is not None else 1
    if l2 is None:
        held_out = val if val is not None else (images[:0], labels[:0])
        choice = choose_l2(model, (images, labels), (held_out[0].to(device), held_out[1].to(device)),
                           dataset, copies)  # fmt: skip
        l2 = choice.l2
        if choice.fit is not None and choice.features is not None:  # fitted on these digits
            set_head(model, choice.fit, choice.features)
            return model, choice.fit, l2
    return model, fit_head(model, images, labels, l2, copies, dataset), l2


def _head_summary(fit: HeadFit) -> dict[str, Any]:
    """The head fit's scalar fields (its weights left out)."""
    values = {f.name: getattr(fit, f.name) for f in fields(fit)}
    return {k: v for k, v in values.items() if isinstance(v, int | float | str | bool)}


def build_step(
    config: BuildStep, out_dir: str | Path, device: torch.device, quiet: bool
) -> BuildOutcome:
    """Build HandNet (analytic conv layers, closed-form head: no gradient touches a weight),
    measure its test accuracy and save it as a ``hand-built`` checkpoint in ``out_dir``.

    ``quiet`` is accepted for the steps' common signature: the closed-form fit has no progress
    to show. The head is fitted on the training digits less the validation ones
    (:func:`dissect.infra.datasets.split_validation`), which fine-tuning decides on."""
    full = load_split(config.dataset, "train", config.data_dir, config.download)
    train, val = split_validation(*full, config.dataset)
    test = load_split(config.dataset, "test", config.data_dir)
    model, head, l2 = build_handnet(config.widths, config.fc4, train, config.l2, device,
                                    val=val, dataset=config.dataset)  # fmt: skip
    result = evaluate(model, *test)
    meta = CheckpointMeta(
        kind="HandNet",
        mode="hand-built",
        data={"name": config.dataset, "data_dir": config.data_dir},
        world_size=dist.world_size(),
        metrics={"accuracy": result.accuracy, **result.metrics()},
        extra={
            "head_fit": {
                "method": HEAD_FIT_METHOD, "l2": l2, "l2_chosen_on_validation": config.l2 is None,
                "copies": head_copies(len(train[1])), "train_accuracy": head.train_accuracy,
            },
            "trainable_parameters": trainable_parameters(model),
        },
    )  # fmt: skip
    if dist.is_main():
        save_model(out_dir, model, meta)
    message = (
        f"HandNet {model.config.convs} hand-built on {config.dataset}: test accuracy "
        f"{result.accuracy:.2%} (train {head.train_accuracy:.2%}); checkpoint in {out_dir}/"
    )
    return BuildOutcome(
        Path(out_dir),
        {
            **_head_summary(head),
            "l2": l2,
            "copies": head_copies(len(train[1])),
            "fit_digits": len(train[1]),
        },
        tuple(config.widths),
        result.accuracy,
        message,
    )


@dataclass(frozen=True)
class FinetuneStep:
    """What to fine-tune: the built HandNet ``checkpoint`` (as given; recorded as the parent),
    the ``mode`` (``constrained``: only the interpretable parameters; ``free``: every weight),
    the training loop's settings (by default ``handnet finetune``'s: at most 40 epochs at
    :data:`~handnet.finetune.FINETUNE_LR`, stopping after
    :data:`~handnet.finetune.FINETUNE_PATIENCE` epochs without a better validation accuracy),
    and ``data_dir`` to read the checkpoint's data set
    from another folder. ``resume`` continues from ``out_dir/last``."""

    checkpoint: str | Path
    mode: str
    training: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=40, lr=FINETUNE_LR, patience=FINETUNE_PATIENCE)
    )
    data_dir: str | None = None
    resume: bool = False


@dataclass(frozen=True)
class FinetuneOutcome:
    """The last epoch's checkpoint folder (``out_dir/last``), its test accuracy, the number of
    trainable parameters, the training seconds, the epochs that ran (fewer than the cap when
    the patience ran out) and the epoch ``best/`` holds with its validation and test
    accuracies."""

    checkpoint: Path
    accuracy: float
    trainable_parameters: int
    seconds: float
    message: str  # what ``handnet finetune`` prints
    epochs_run: int = 0
    best_epoch: int = 0
    best_val_accuracy: float | None = None
    best_accuracy: float | None = None


def check_built(model: nn.Module, path: str | Path) -> HandNet:
    """``model`` (loaded from ``path``) if it is a hand-built HandNet, which fine-tuning starts
    from; anything else raises :class:`AuditError`."""
    if not isinstance(model, HandNet):
        raise AuditError(f"{str(path)!r} is not a HandNet checkpoint (build one: handnet build)")
    if model.config.free:
        raise AuditError(f"{str(path)!r} was already freed: fine-tune its hand-built parent")
    return model


def finetune_step(
    config: FinetuneStep, out_dir: str | Path, device: torch.device, quiet: bool
) -> FinetuneOutcome:
    """Fine-tune the built HandNet ``config.checkpoint`` on its own data set in ``config.mode``;
    write ``last/``, ``best/``, ``history.csv``, ``snapshots.safetensors`` and ``drift.csv``
    into ``out_dir``. It is fitted on the training digits less the validation ones, which
    choose ``best/`` and stop it (:func:`dissect.infra.datasets.split_validation`)."""
    out_dir = Path(out_dir)
    loaded, meta = load_checkpoint(config.checkpoint, map_location=device)
    model = check_built(loaded, config.checkpoint)
    full = load_checkpoint_data(meta, "train", config.data_dir)
    train, val = split_validation(*full, str(meta.data.get("name")))
    test = load_checkpoint_data(meta, "test", config.data_dir)
    before = HandNet(model.current_config()).to(device)
    before.load_state_dict(model.state_dict())
    parent = CheckpointMeta(data=meta.data, parent=str(Path(config.checkpoint).resolve()))
    result = finetune(model, train, test, config.mode, config.training, out_dir=out_dir,
                      val=val, metadata=parent, resume=config.resume, quiet=quiet)  # fmt: skip
    if dist.is_main():
        drift = filter_drift(before, result.model)
        atomic_save(out_dir / "drift.csv", lambda p: drift.to_csv(p, index=False))
    run = result.train
    accuracy = run.final.accuracy
    stopped = (
        " (validation accuracy stopped improving)"
        if run.epochs_run < config.training.epochs
        else ""
    )
    message = (
        f"HandNet fine-tuned ({config.mode}, {result.trainable} trainable parameters): test "
        f"accuracy {accuracy:.2%} after {run.epochs_run} of at most {config.training.epochs} "
        f"epoch(s){stopped}; {describe_best(run)}; checkpoints and drift.csv in {out_dir}/"
    )
    return FinetuneOutcome(
        out_dir / "last", accuracy, result.trainable, run.seconds, message,
        epochs_run=run.epochs_run, best_epoch=run.best_epoch,
        best_val_accuracy=run.best_val_accuracy, best_accuracy=run.best_accuracy,
    )  # fmt: skip
