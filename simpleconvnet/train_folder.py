"""A training run's folder: what each epoch writes there and what ``--resume`` reads back.

``last/`` (weights, ``model.json``, optimiser and training state) and ``best/`` are checkpoint
folders written whole and swapped in (:func:`simpleconvnet.checkpoint.atomic_folder`);
``history.csv``, ``confusion.csv`` and ``snapshots.safetensors`` sit beside them. Rank 0 writes;
every rank waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dissect.infra import distributed as dist
from dissect.infra.atomic import atomic_path, atomic_save
from dissect.infra.checkpoints import CheckpointMeta, load_checkpoint
from dissect.infra.errors import AuditError
from simpleconvnet.checkpoint import (
    atomic_folder,
    load_training_state,
    package_versions,
    recover_folder,
    save_model,
    save_training_state,
)
from simpleconvnet.evaluation import EvalResult

__all__ = [
    "Snapshots",
    "load_snapshots",
    "best_row",
    "epoch_meta",
    "write_epoch",
    "write_tables",
    "resume_run",
]

#: The columns of ``history.csv`` (and the keys of each ``history`` row), in this order.
HISTORY_COLUMNS = (
    "epoch", "step", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
    "val_loss", "val_accuracy", "seconds",
)  # fmt: skip


def _first_layer_weight(model: nn.Module) -> torch.Tensor:
    names = getattr(model, "conv_names", ["conv1"])
    return getattr(model, names[0]).weight.detach().cpu().clone()


class Snapshots:
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


def load_snapshots(path: Path, up_to_step: int) -> dict[str, torch.Tensor]:
    """The frames saved at ``path`` up to step ``up_to_step``: the file is written before
    ``last/``, so after a kill it may hold frames of an epoch that is trained again."""
    if not path.is_file():
        return {}
    frames = load_file(str(path))
    return {k: v for k, v in frames.items() if int(k.rsplit("_", 1)[1]) <= up_to_step}


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The history row ``best/`` holds: the first with the highest ``val_accuracy``; without
    validation columns, the last row (nothing to choose by: the test split never chooses)."""
    if not rows:
        return None
    if "val_accuracy" not in rows[-1]:
        return rows[-1]
    top = max(r.get("val_accuracy", -1.0) for r in rows)  # an older version's rows: none
    return next(r for r in rows if r.get("val_accuracy", -1.0) == top)


def epoch_meta(
    train_config: dict[str, Any],
    metadata: CheckpointMeta | dict[str, Any] | None,
    rows: list[dict[str, Any]],
    final: EvalResult,
) -> CheckpointMeta:
    """The caller's ``metadata`` (kind, mode, data, parent, ...) with what training adds: its
    seed, world size, epoch, metrics and history, and ``train_config`` (the
    :class:`~simpleconvnet.train.TrainConfig` as a dict, an extra key). The metrics are the
    last epoch's on the test split, its ``val_loss``/``val_accuracy`` where there is a
    validation split, and the best of them so far (``best_val_accuracy``, at ``best_epoch``)."""
    if not isinstance(metadata, CheckpointMeta):
        metadata = CheckpointMeta().with_(**(metadata or {}))
    last = rows[-1]
    val: dict[str, Any] = {k: last[k] for k in ("val_loss", "val_accuracy") if k in last}
    best = best_row(rows)
    if val and best is not None:
        val.update(best_val_accuracy=best["val_accuracy"], best_epoch=best["epoch"])
    return metadata.with_(
        seed=train_config["seed"],
        world_size=dist.world_size(),
        epoch=rows[-1]["epoch"],
        metrics={"accuracy": final.accuracy, **final.metrics(), **val},
        history=rows,
        versions=package_versions(),
        train_config=train_config,
    )


def write_epoch(
    model, optimizer, out, train_config, metadata, rows, final, improved, snapshots
) -> None:
    """Write an epoch's outputs; ``last/`` is the commit point.

    ``last/`` (optimiser state, training state, weights, ``model.json``) is written whole into
    a fresh ``last.tmp-XXXX/`` that then replaces it in one step (:func:`atomic_folder`), so
    ``last/`` is always one epoch's consistent checkpoint. What ``--resume`` cannot rebuild
    comes before it: ``best/`` (also swapped in whole; ``improved``: this epoch is the best on
    the validation split) and the snapshots, which an epoch
    trained again after a kill writes again identically. What it can rebuild comes after:
    ``history.csv`` and ``confusion.csv`` (rewritten on resume).
    """
    if dist.is_main():
        meta = epoch_meta(train_config, metadata, rows, final)
        best = meta.metrics.get("best_val_accuracy", -1.0)
        state = {"epoch": rows[-1]["epoch"], "best": best, "elapsed": rows[-1]["seconds"]}
        if improved:
            with atomic_folder(out / "best") as tmp:
                save_model(tmp, model, meta)
        snapshots.write()
        with atomic_folder(out / "last") as tmp:
            save_training_state(tmp, optimizer, state)
            save_model(tmp, model, meta)
        write_tables(out, rows, final)
    dist.barrier()


def write_tables(out: Path, rows: list[dict[str, Any]], final: EvalResult) -> None:
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


def resume_run(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    out: Path | None,
    seed: int,
    device: torch.device,
) -> tuple[int, float, float, list[dict[str, Any]]]:
    """Load ``out/last`` into ``model`` and ``optimizer``; returns ``(epochs done, best
    validation accuracy (-1 without one), seconds so far, history rows)``. A kill inside a folder swap is repaired first."""
    if out is not None and dist.is_main():
        recover_folder(out / "last")  # a kill inside a folder swap (see atomic_folder)
        recover_folder(out / "best")
    dist.barrier()
    if out is None or not (out / "last" / "model.json").is_file():
        raise AuditError(f"--resume: no finished epoch to resume from in {str(out)!r}")
    saved, meta = load_checkpoint(out / "last", map_location=device)
    if _signature(saved) != _signature(model):
        raise AuditError(f"cannot resume: {str(out / 'last')!r} holds another architecture")
    if meta.extra.get("train_config", {}).get("seed") != seed:
        raise AuditError("cannot resume: the checkpoint was trained with another --seed")
    state = load_training_state(out / "last", optimizer, device)
    history = [_ordered(row) for row in meta.history]
    epoch = int(state["epoch"])
    # one consistent checkpoint: a folder written by an older version, killed between its
    # files, can pair the optimiser state of one epoch with the weights of another
    if meta.epoch is not None and meta.epoch != epoch:
        raise AuditError(
            f"cannot resume: {str(out / 'last')!r} mixes two epochs (optimiser state of epoch "
            f"{epoch}, model.json of epoch {meta.epoch}): an older version was killed "
            "while writing it; start again with --force"
        )
    model.load_state_dict(saved.state_dict())
    return epoch, float(state["best"]), float(state["elapsed"]), history
