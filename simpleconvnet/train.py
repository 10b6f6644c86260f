"""Training and evaluation for any model of the suite's shape (SimpleConvNet, HandNet).

The loop works on pre-loaded tensors. Under ``torchrun`` it wraps the model in
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
from typing import Any, cast

import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dissect.infra import distributed as dist
from dissect.infra.atomic import atomic_path, atomic_save
from dissect.infra.errors import AuditError
from dissect.infra.runtime import progress
from simpleconvnet.checkpoint import (
    atomic_folder,
    load_training_state,
    package_versions,
    read_metadata,
    recover_folder,
    save_model,
    save_training_state,
)
from simpleconvnet.data import augment

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EvalResult",
    "fit",
    "evaluate",
    "one_cycle_lr",
    "make_optimizer",
]


#: The columns of ``history.csv`` (and the keys of each ``history`` row), in this order.
HISTORY_COLUMNS = (
    "epoch", "step", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds",
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``batch_size`` is the global batch (split across ranks)."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    augment: bool = True
    seed: int = 0
    snapshot_every: int = 200
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise AuditError("--epochs and --batch-size must be at least 1")
        if self.optimizer not in ("adam", "sgd"):
            raise AuditError(f"unknown optimizer {self.optimizer!r}: use adam or sgd")
        if self.schedule not in ("onecycle", "constant"):
            raise AuditError(f"unknown schedule {self.schedule!r}: use onecycle or constant")


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    per_class: list[float]
    confusion: pd.DataFrame  # rows: true class, columns: predicted class (counts)

    def metrics(self) -> dict[str, Any]:
        return {"test_loss": self.loss, "test_accuracy": self.accuracy, "per_class": self.per_class}


@dataclass
class TrainResult:
    history: pd.DataFrame
    final: EvalResult
    best_accuracy: float
    seconds: float
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


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> EvalResult:
    """Accuracy, per-class accuracy, mean loss and confusion matrix on ``images [N,1,28,28]``.

    Each rank evaluates its shard; counts are summed across ranks, so the figures are those of
    the whole set.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    classes = int(cast(nn.Linear, model.get_submodule("fc5")).out_features)  # the suite's head
    # counts on the CPU, where the .cpu() batch results are added; CPU indices index any device
    confusion = torch.zeros(classes, classes, dtype=torch.int64, device="cpu")
    loss_sum = torch.zeros((), dtype=torch.float64, device="cpu")
    idx = torch.arange(dist.rank(), len(images), dist.world_size(), device="cpu")
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        x, y = images[part].to(device), labels[part].to(device)
        out = model(x)
        loss_sum += F.nll_loss(out, y, reduction="sum").double().cpu()
        pred = out.argmax(1)
        confusion += torch.bincount(
            (y * classes + pred).cpu(), minlength=classes * classes
        ).reshape(classes, classes)
    confusion = dist.all_reduce_sum(confusion)
    loss_sum = dist.all_reduce_sum(loss_sum)
    model.train(was_training)
    total = int(confusion.sum())
    per_class = (confusion.diag().double() / confusion.sum(1).clamp(min=1).double()).tolist()
    names = [str(k) for k in range(classes)]
    frame = pd.DataFrame(confusion.numpy(), index=names, columns=names)
    frame.index.name, frame.columns.name = "true", "predicted"
    return EvalResult(
        loss=float(loss_sum) / max(total, 1),
        accuracy=float(confusion.diag().sum()) / max(total, 1),
        per_class=per_class,
        confusion=frame,
    )


def _first_layer_weight(model: nn.Module) -> torch.Tensor:
    names = getattr(model, "conv_names", ["conv1"])
    return getattr(model, names[0]).weight.detach().cpu().clone()


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g, device=g.device)


class _Snapshots:
    """First-layer filters every ``every`` optimiser steps, kept in one small safetensors file."""

    def __init__(self, path: Path | None, every: int, existing: dict[str, torch.Tensor]):
        self.path, self.every, self.frames = path, every, dict(existing)

    def maybe_take(self, step: int, model: nn.Module) -> None:
        if self.every > 0 and step % self.every == 0:
            self.frames[f"step_{step:07d}"] = _first_layer_weight(model)

    def write(self) -> None:
        if self.path is not None and self.frames and dist.is_main():
            with atomic_path(self.path) as tmp:
                save_file(self.frames, str(tmp))


def _load_snapshots(path: Path, up_to_step: int) -> dict[str, torch.Tensor]:
    """The frames saved at ``path`` up to step ``up_to_step``: the file is written before
    ``last/``, so after a kill it may hold frames of an epoch that is trained again."""
    if not path.is_file():
        return {}
    from safetensors.torch import load_file

    frames = load_file(str(path))
    return {k: v for k, v in frames.items() if int(k.rsplit("_", 1)[1]) <= up_to_step}


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = False,
    quiet: bool = False,
    desc: str = "train",
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` (already on its device) on ``train`` and evaluate on ``test`` each epoch.

    ``train``/``test`` are ``(images [N,1,28,28] in [0,1], labels [N])``. With ``out_dir``,
    writes ``last/`` and ``best/`` checkpoints, ``history.csv`` and ``snapshots.safetensors``
    (rank 0 only, atomically; each checkpoint folder is replaced whole, see
    :func:`_write_epoch`). ``resume`` continues from ``out_dir/last`` and ends with the same
    weights as an uninterrupted run, wherever the previous run was killed. Only parameters with
    ``requires_grad`` are trained.
    """
    device = next(model.parameters()).device
    out = Path(out_dir) if out_dir is not None else None
    images, labels = train[0].to(device), train[1].to(device)
    n = len(images)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(model.parameters(), config)
    rows: list[dict[str, Any]] = []
    start_epoch, best, elapsed = 0, -1.0, 0.0
    snapshots = _Snapshots(
        out / "snapshots.safetensors" if out else None, config.snapshot_every, {}
    )
    if resume:
        if out is not None and dist.is_main():
            recover_folder(out / "last")  # a kill inside a folder swap (see atomic_folder)
            recover_folder(out / "best")
        dist.barrier()
        if out is None or not (out / "last" / "model.json").is_file():
            raise AuditError(f"--resume: no finished epoch to resume from in {str(out)!r}")
        start_epoch, best, elapsed, rows = _restore(model, optimizer, out, config, device)
        snapshots.frames = _load_snapshots(
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
        _write_tables(out, rows, final)  # a kill may have come after last/ but before them
    for epoch in range(start_epoch, config.epochs):
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
            if config.augment:
                x = augment(x, local, config.seed, epoch, n)
            lr = (
                one_cycle_lr(step, total_steps, config.lr)
                if config.schedule == "onecycle"
                else config.lr
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            output = net(x)
            loss = F.nll_loss(output, y, reduction="sum") * (world / len(batch))
            loss.backward()
            optimizer.step()
            step += 1
            snapshots.maybe_take(step, model)
            with torch.no_grad():
                loss_sum += loss.detach().double() * (len(batch) / world)
                correct += (output.argmax(1) == y).sum()
        loss_sum, correct = dist.all_reduce_sum(loss_sum), dist.all_reduce_sum(correct)
        final = evaluate(model, *test, batch_size=config.eval_batch_size)
        elapsed += time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "step": step,
            "lr": lr,
            "train_loss": float(loss_sum) / n,
            "train_accuracy": float(correct) / n,
            "test_loss": final.loss,
            "test_accuracy": final.accuracy,
            "seconds": round(elapsed, 3),
        }
        rows.append(row)
        if not quiet and dist.is_main():
            print(
                f"{desc} epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.4f}, "
                f"train acc {row['train_accuracy']:.2%}, test acc {final.accuracy:.2%}",
                flush=True,
            )
        improved = final.accuracy > best
        best = max(best, final.accuracy)
        if out is not None:
            _write_epoch(
                model, optimizer, out, config, metadata, rows, final, best, improved, snapshots
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
    assert final is not None
    return TrainResult(pd.DataFrame(rows), final, best, elapsed)


def _checkpoint_meta(
    config: TrainConfig,
    metadata: dict[str, Any] | None,
    rows: list[dict[str, Any]],
    final: EvalResult,
    best: float,
) -> dict[str, Any]:
    return {
        **(metadata or {}),
        "seed": config.seed,
        "train_config": asdict(config),
        "epoch": rows[-1]["epoch"],
        "metrics": {**final.metrics(), "best_test_accuracy": best},
        "history": rows,
        "versions": package_versions(),
    }


def _write_epoch(
    model, optimizer, out, config, metadata, rows, final, best, improved, snapshots
) -> None:
    """Write an epoch's outputs; ``last/`` is the commit point.

    ``last/`` (optimiser state, training state, weights, ``model.json``) is written whole into
    a fresh ``last.tmp-XXXX/`` that then replaces it in one step (:func:`atomic_folder`), so
    ``last/`` is always one epoch's consistent checkpoint. What ``--resume`` cannot rebuild
    comes before it: ``best/`` (also swapped in whole) and the snapshots, which an epoch
    trained again after a kill writes again identically. What it can rebuild comes after:
    ``history.csv`` and ``confusion.csv`` (rewritten on resume).
    """
    if dist.is_main():
        meta = _checkpoint_meta(config, metadata, rows, final, best)
        state = {"epoch": rows[-1]["epoch"], "best": best, "elapsed": rows[-1]["seconds"]}
        if improved:
            with atomic_folder(out / "best") as tmp:
                save_model(tmp, model, meta)
        snapshots.write()
        with atomic_folder(out / "last") as tmp:
            save_training_state(tmp, optimizer, state)
            save_model(tmp, model, meta)
        _write_tables(out, rows, final)
    dist.barrier()


def _write_tables(out: Path, rows: list[dict[str, Any]], final: EvalResult) -> None:
    history = pd.DataFrame(rows)
    atomic_save(out / "history.csv", lambda p: history.to_csv(p, index=False))
    atomic_save(out / "confusion.csv", lambda p: final.confusion.to_csv(p))


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    """A history row with its keys in :data:`HISTORY_COLUMNS` order (``model.json`` is written
    with sorted keys), any other key after them."""
    known = {k: row[k] for k in HISTORY_COLUMNS if k in row}
    return {**known, **{k: v for k, v in row.items() if k not in known}}


def _signature(model: nn.Module) -> tuple[str, dict[str, tuple[int, ...]]]:
    """The class and every tensor's shape: what a resumed model must share with its checkpoint
    (a hand-built layer's parameter *values* move in training, so its config cannot be used)."""
    return type(model).__name__, {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _restore(model, optimizer, out: Path, config: TrainConfig, device):
    from dissect.infra.checkpoints import load_checkpoint

    saved, meta = load_checkpoint(out / "last", map_location=device)
    if _signature(saved) != _signature(model):
        raise AuditError(f"cannot resume: {str(out / 'last')!r} holds another architecture")
    if meta.get("train_config", {}).get("seed") != config.seed:
        raise AuditError("cannot resume: the checkpoint was trained with another --seed")
    state = load_training_state(out / "last", optimizer, device)
    history = [_ordered(row) for row in meta.get("history") or []]
    epoch = int(state["epoch"])
    # one consistent checkpoint: a folder written by an older version, killed between its
    # files, can pair the optimiser state of one epoch with the weights of another
    if meta.get("epoch", epoch) != epoch:
        raise AuditError(
            f"cannot resume: {str(out / 'last')!r} mixes two epochs (optimiser state of epoch "
            f"{epoch}, model.json of epoch {meta.get('epoch')}): an older version was killed "
            "while writing it; start again with --force"
        )
    model.load_state_dict(saved.state_dict())
    return epoch, float(state["best"]), float(state["elapsed"]), history


__all__ += ["read_metadata"]
