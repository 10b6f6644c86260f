"""Training for any model of the suite's shape (SimpleConvNet, HandNet).

Evaluation is :mod:`simpleconvnet.evaluation`, the run folder (checkpoints, tables, resuming)
:mod:`simpleconvnet.train_folder`. The loop works on pre-loaded tensors. Under ``torchrun`` it wraps the model in
DistributedDataParallel and splits every global batch across ranks (rank ``r`` takes every
``W``-th sample of the batch); the loss is scaled so that the averaged gradient is that of the
whole global batch, so the optimisation does not depend on the number of processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dissect.infra import distributed as dist
from dissect.infra.checkpoints import CheckpointMeta
from dissect.infra.errors import AuditError
from dissect.infra.runtime import progress
from simpleconvnet.checkpoint import read_metadata
from simpleconvnet.data import AUGMENTATIONS, augment_batch, augmentation_for, smoothing_for
from simpleconvnet.evaluation import EvalResult, evaluate
from simpleconvnet.train_folder import (
    Snapshots,
    best_row,
    load_snapshots,
    resume_run,
    write_epoch,
    write_tables,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EvalResult",
    "fit",
    "best_row",
    "should_stop",
    "describe_best",
    "evaluate",
    "one_cycle_lr",
    "make_optimizer",
]


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``batch_size`` is the global batch (split across ranks).

    ``epochs`` is a cap when a stopping rule is set, both judged on the validation split after
    each epoch: ``patience`` stops once validation accuracy has not improved for that many
    epochs; ``stop_at_val_accuracy`` stops once it reaches that value (a fraction). The
    learning-rate schedule is always laid out over ``epochs``."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    #: True: the data set's own (:func:`~simpleconvnet.data.augmentation_for`); False: none;
    #: or one of :data:`~simpleconvnet.data.AUGMENTATIONS` by name
    augment: bool | str = True
    elastic: float = 0.0  # pixels of smooth random warp in the digits' augmentation
    #: None: the data set's own (:func:`~simpleconvnet.data.smoothing_for`)
    label_smoothing: float | None = None
    seed: int = 0
    snapshot_every: int = 200
    eval_batch_size: int = 1000
    patience: int | None = None
    stop_at_val_accuracy: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise AuditError("--epochs and --batch-size must be at least 1")
        if self.optimizer not in ("adam", "sgd"):
            raise AuditError(f"unknown optimizer {self.optimizer!r}: use adam or sgd")
        if self.schedule not in ("onecycle", "constant"):
            raise AuditError(f"unknown schedule {self.schedule!r}: use onecycle or constant")
        if self.patience is not None and self.patience < 1:
            raise AuditError(f"--patience must be at least 1, not {self.patience}")
        if not isinstance(self.augment, bool) and self.augment not in AUGMENTATIONS:
            raise AuditError(f"unknown --augment {self.augment!r}: use {', '.join(AUGMENTATIONS)}")
        smoothing = 0.0 if self.label_smoothing is None else self.label_smoothing
        if not (0.0 <= smoothing < 1.0 and 0.0 <= self.elastic <= 8.0):
            raise AuditError("--label-smoothing must lie in [0, 1) and --elastic in [0, 8] pixels")


@dataclass
class TrainResult:
    """``final``: the last epoch on the test split; ``best_epoch``: the epoch ``best/`` holds
    (the best validation accuracy, the first of equals; the last epoch without a validation
    split), ``best_accuracy`` its test accuracy, ``best_val_accuracy`` its validation accuracy
    (``None`` without one); ``epochs_run``: how many epochs ran, at most ``config.epochs``."""

    history: pd.DataFrame
    final: EvalResult
    best_accuracy: float
    seconds: float
    best_val_accuracy: float | None = None
    best_epoch: int = 0
    epochs_run: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def one_cycle_lr(step: int, total: int, max_lr: float, pct_start: float = 0.25) -> float:
    """One-cycle schedule as a pure function: linear warm-up from max_lr/25 to max_lr over the
    first ``pct_start`` of the steps, then cosine annealing to max_lr/1e4."""
    warm = max(1, int(total * pct_start))
    start, end = max_lr / 25, max_lr / 1e4
    if step < warm:
        return start + (max_lr - start) * step / warm
    t = (step - warm) / max(1, total - warm)
    return end + (max_lr - end) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise AuditError("nothing to train: the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g, device=g.device)


def describe_best(result: TrainResult) -> str:
    """``best/`` in words: its epoch and accuracies."""
    val = result.best_val_accuracy
    chosen = f"validation {val:.2%}" if val is not None else "no validation split: the last"
    return f"best/: epoch {result.best_epoch} ({chosen}, test {result.best_accuracy:.2%})"


def _dataset_of(metadata: CheckpointMeta | dict[str, Any] | None) -> str | None:
    data = metadata.get("data") if isinstance(metadata, dict) else getattr(metadata, "data", None)
    return data.get("name") if isinstance(data, dict) else None


def _loss(output: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """The summed negative log-likelihood of ``output`` (log-probabilities), with ``smoothing``
    of the target's mass spread evenly over all classes."""
    nll = F.nll_loss(output, target, reduction="sum")
    if smoothing == 0:
        return nll
    return (1 - smoothing) * nll - smoothing * output.mean(dim=1).sum()


def should_stop(rows: list[dict[str, Any]], config: TrainConfig) -> bool:
    """Whether training stops after the last of the history ``rows``, by ``config``'s rules on
    the validation split (a pure function of the history, so ``--resume`` agrees)."""
    best = best_row(rows)
    if best is None or "val_accuracy" not in rows[-1]:
        return False
    target = config.stop_at_val_accuracy
    if target is not None and rows[-1]["val_accuracy"] >= target:
        return True
    patience = config.patience
    return patience is not None and rows[-1]["epoch"] - best["epoch"] >= patience


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    out_dir: str | Path | None = None,
    metadata: CheckpointMeta | dict[str, Any] | None = None,
    resume: bool = False,
    quiet: bool = False,
    desc: str = "train",
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    dataset: str | None = None,
) -> TrainResult:
    """Train ``model`` (already on its device) on ``train`` and evaluate on ``test`` (and
    ``val``) each epoch.

    ``train``/``test``/``val`` are ``(images [N,1,28,28] in [0,1], labels [N])``. Every
    decision is taken on ``val``, never on ``test`` (only reported): ``best/`` is the epoch of
    :func:`best_row`, and ``config``'s stopping rules (:func:`should_stop`); without ``val`` (or
    with an empty one) nothing is chosen: ``best/`` is the last epoch and no rule stops early.
    With ``out_dir``,
    writes ``last/`` and ``best/`` checkpoints, ``history.csv`` and ``snapshots.safetensors``
    (rank 0 only, atomically; each checkpoint folder is replaced whole, see
    :func:`~simpleconvnet.train_folder.write_epoch`); their ``model.json`` is ``metadata`` (the
    kind, mode, data set and parent the caller knows) with what training adds (seed, world
    size, epoch, metrics, history). ``resume`` continues from ``out_dir/last`` and ends with the same
    weights as an uninterrupted run, wherever the previous run was killed. Only parameters with
    ``requires_grad`` are trained. ``dataset`` (default: the one ``metadata`` names) picks
    the augmentation when ``config.augment`` is True and the label smoothing when
    ``config.label_smoothing`` is None.
    """
    device = next(model.parameters()).device
    named = dataset or _dataset_of(metadata)
    kind = augmentation_for(config.augment, named)
    smoothing = smoothing_for(config.label_smoothing, named)
    out = Path(out_dir) if out_dir is not None else None
    if val is not None and len(val[1]) == 0:  # a tiny data set carves no validation digits
        val = None
    images, labels = train[0].to(device), train[1].to(device)
    n = len(images)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(model.parameters(), config)
    train_config = asdict(config)
    rows: list[dict[str, Any]] = []
    start_epoch, elapsed = 0, 0.0
    snapshots = Snapshots(out / "snapshots.safetensors" if out else None, config.snapshot_every, {})
    if resume:
        start_epoch, _, elapsed, rows = resume_run(model, optimizer, out, config.seed, device)
        snapshots.frames = load_snapshots(
            snapshots.path,  # type: ignore[arg-type]
            start_epoch * steps_per_epoch,
        )
    world, rank = dist.world_size(), dist.rank()
    if world > 1 and config.batch_size < world:
        raise AuditError(f"--batch-size {config.batch_size} is smaller than {world} processes")
    net: nn.Module = DistributedDataParallel(model) if dist.is_distributed() else model
    step = start_epoch * steps_per_epoch
    if step == 0:
        snapshots.maybe_take(0, model)
    final = evaluate(model, *test, batch_size=config.eval_batch_size) if start_epoch else None
    if out is not None and final is not None and dist.is_main():
        write_tables(out, rows, final)  # a kill may have come after last/ but before them
    for epoch in range(start_epoch, config.epochs):
        if should_stop(rows, config):
            break
        t0 = time.perf_counter()
        model.train()
        order = _epoch_order(n, config.seed, epoch)
        # summed on the device: reading them back every step would wait for the GPU
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        batches = progress(
            range(steps_per_epoch),
            quiet=quiet or not dist.is_main(),
            desc=f"{desc} {epoch + 1}/{config.epochs}",
            leave=False,
        )
        for b in batches:
            batch = order[b * config.batch_size : (b + 1) * config.batch_size]
            local = batch[rank::world]
            x, y = images[local.to(device)], labels[local.to(device)]
            x = augment_batch(kind, x, local, config.seed, epoch, n, elastic=config.elastic)
            lr = (
                one_cycle_lr(step, total_steps, config.lr)
                if config.schedule == "onecycle"
                else config.lr
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            output = net(x)
            loss = _loss(output, y, smoothing) * (world / len(batch))
            loss.backward()
            optimizer.step()
            step += 1
            snapshots.maybe_take(step, model)
            with torch.no_grad():
                loss_sum += loss.detach().double() * (len(batch) / world)
                correct += (output.argmax(1) == y).sum()
        loss_sum, correct = dist.all_reduce_sum(loss_sum), dist.all_reduce_sum(correct)
        final = evaluate(model, *test, batch_size=config.eval_batch_size)
        checked = evaluate(model, *val, batch_size=config.eval_batch_size) if val else None
        elapsed += time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "step": step,
            "lr": lr,
            "train_loss": float(loss_sum) / n,
            "train_accuracy": float(correct) / n,
            "test_loss": final.loss,
            "test_accuracy": final.accuracy,
            **({"val_loss": checked.loss, "val_accuracy": checked.accuracy} if checked else {}),
            "seconds": round(elapsed, 3),
        }
        rows.append(row)
        shown = f", val acc {checked.accuracy:.2%}" if checked else ""
        if not quiet and dist.is_main():
            print(
                f"{desc} epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.4f}, "
                f"train acc {row['train_accuracy']:.2%}, test acc {final.accuracy:.2%}{shown}",
                flush=True,
            )
        if out is not None:
            write_epoch(
                model, optimizer, out, train_config, metadata, rows, final,
                best_row(rows) is row, snapshots,
            )  # fmt: skip
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    assert final is not None
    best = best_row(rows)
    assert best is not None
    return TrainResult(
        pd.DataFrame(rows), final, best["test_accuracy"], elapsed,
        best_val_accuracy=best.get("val_accuracy"), best_epoch=best["epoch"],
        epochs_run=rows[-1]["epoch"],
    )  # fmt: skip


__all__ += ["read_metadata"]
