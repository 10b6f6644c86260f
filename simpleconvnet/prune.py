"""Iterative outer-channel pruning: score, cut, retrain, repeat; plus the redundant-layer step.

Which channels each cut keeps is :mod:`simpleconvnet.selection` (schedule, choosers, the cut),
how to prune :class:`~simpleconvnet.prune_config.PruneConfig`, the run folder
:mod:`simpleconvnet.prune_folder`. :func:`prune` is the loop; it writes, per
iteration, a checkpoint ``iter_K/`` and appends to ``history.csv`` and ``scores.csv``, and
resumes from the last finished iteration (``state.json``, written last, says which; every
checkpoint folder is written whole, then swapped in: see
:func:`simpleconvnet.checkpoint.atomic_folder`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dissect.infra import distributed as dist
from dissect.infra.checkpoints import CheckpointMeta
from dissect.infra.errors import AuditError
from dissect.infra.runtime import progress
from simpleconvnet.model import SimpleConvNet
from simpleconvnet.prune_config import PruneConfig
from simpleconvnet.prune_folder import accuracy_metrics, resume_run, save_folder, write_iteration
from simpleconvnet.retrain import Accuracies, measure, redundancy_step, retrain
from simpleconvnet.selection import (
    Chooser,
    choose_at_random,
    choose_by_score,
    cut,
    schedule,
    score_data,
)
from simpleconvnet.surgery import conv_parameter_count
from simpleconvnet.train import evaluate

__all__ = ["PruneConfig", "PruneResult", "schedule", "choose_by_score", "choose_at_random", "prune"]

Data = tuple[torch.Tensor, torch.Tensor]
#: The name ``tests/scripts/dist_stats.py`` imports the cut by.
_cut = cut


@dataclass
class PruneResult:
    model: SimpleConvNet
    history: pd.DataFrame
    scores: pd.DataFrame
    redundancy: dict[str, Any]


def _pruned_meta(
    metadata: CheckpointMeta | dict[str, Any] | None, config: PruneConfig
) -> CheckpointMeta:
    """The caller's ``metadata`` (kind, data set, parent) with what pruning adds: mode
    ``pruned``, the retraining seed, the world size and the config (an extra key)."""
    if not isinstance(metadata, CheckpointMeta):
        metadata = CheckpointMeta().with_(**(metadata or {}))
    return metadata.with_(
        mode="pruned", seed=config.seed, world_size=dist.world_size(),
        prune_config=asdict(config),
    )  # fmt: skip


def _row(
    iteration,
    model,
    before: Accuracies,
    after_cut: Accuracies,
    after: Accuracies,
    removed,
    epochs: int,
    t0,
) -> dict[str, Any]:
    """A history row: test accuracies (``accuracy_*``, reported) and validation accuracies
    (``val_accuracy_*``, which decide) before the cut, after it and after retraining
    (``retrain_epochs`` epochs)."""
    return {
        "iteration": iteration,
        "widths": "/".join(str(c) for c in model.config.convs),
        "conv_parameters": conv_parameter_count(model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "accuracy_before_cut": before.test,
        "accuracy_after_cut": after_cut.test,
        "accuracy_after_retraining": after.test,
        "val_accuracy_before_cut": before.val,
        "val_accuracy_after_cut": after_cut.val,
        "val_accuracy_after_retraining": after.val,
        "retrain_epochs": epochs,
        "removed": removed,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def prune(
    model: SimpleConvNet,
    train: Data,
    test: Data,
    config: PruneConfig,
    *,
    val: Data,
    out_dir: str | Path | None = None,
    metadata: CheckpointMeta | dict[str, Any] | None = None,
    chooser: Chooser = choose_by_score,
    resume: bool = False,
    quiet: bool = False,
) -> PruneResult:
    """Prune ``model`` (on its device) to ``config.targets`` over ``config.iterations`` cuts.

    ``train`` fits (and scores channels), ``val`` decides (when a retraining has recovered,
    whether conv3 goes), ``test`` is reported. Row 0 is the unpruned model. Iterations 1..N
    each score every targeted conv layer, cut it to the scheduled width, evaluate, retrain
    until recovered (see :class:`PruneConfig`) and evaluate again. Iteration N+1 is the redundant-layer step (see :func:`simpleconvnet.retrain.redundancy_step`). Channel numbers in the outputs are 1-based;
    ``original_channel`` refers to the unpruned model.
    """
    out = Path(out_dir) if out_dir is not None else None
    device = next(model.parameters()).device
    meta = _pruned_meta(metadata, config)
    done, resumed, origins, rows, score_rows, redundancy = (
        resume_run(out, device) if (resume and out) else (-1, None, {}, [], [], {})
    )
    if resume and resumed is None:
        raise AuditError(f"--resume: no finished pruning iteration in {str(out)!r}")
    if resumed is None:
        acc = measure(model, test, val)
        origins = {
            layer: list(range(getattr(model, layer).out_channels)) for layer in model.conv_names
        }
        rows.append(_row(0, model, acc, acc, acc, "", 0, time.perf_counter()))
        if out:
            write_iteration(out, model, meta, 0, rows, score_rows, origins, redundancy)
        done = 0
    else:  # an older version's rows lack the unpruned net's validation accuracy
        if "val_accuracy_before_cut" not in rows[0]:
            rows[0]["val_accuracy_before_cut"] = evaluate(model, *val).accuracy
        model = resumed
    targets = dict(zip(model.conv_names, config.targets, strict=False))
    start_widths = dict(zip(model.conv_names, map(int, rows[0]["widths"].split("/")), strict=False))
    plans = {
        layer: schedule(start_widths[layer], t, config.iterations) for layer, t in targets.items()
    }
    data = score_data(train, config.score_images)
    for it in progress(
        range(done + 1, config.iterations + 2), quiet=quiet or not dist.is_main(), desc="prune"
    ):
        if it <= config.iterations:
            model = _iteration(
                model,
                it,
                plans,
                data,
                train,
                val,
                test,
                config,
                chooser,
                origins,
                score_rows,
                rows,
                quiet,
            )
        else:
            t0 = time.perf_counter()
            before = measure(model, test, val)
            unpruned = Accuracies(
                rows[0]["accuracy_before_cut"], rows[0]["val_accuracy_before_cut"]
            )
            model, redundancy, epochs = redundancy_step(
                model, train, val, test, config, unpruned, before, quiet
            )
            after = measure(model, test, val)
            cut = Accuracies(
                redundancy.get("accuracy_right_after_removal", after.test),
                redundancy.get("val_accuracy_right_after_removal", after.val),
            )
            gone = "conv3" if redundancy["dropped"] else ""
            rows.append(_row(it, model, before, cut, after, gone, epochs, t0))
        if out:
            write_iteration(out, model, meta, it, rows, score_rows, origins, redundancy)
    if out and dist.is_main():
        final_meta = meta.with_(
            metrics=accuracy_metrics(rows), pruning_history=rows, redundancy=redundancy
        )
        save_folder(out / "final", model, final_meta)
    dist.barrier()
    return PruneResult(model, pd.DataFrame(rows), pd.DataFrame(score_rows), redundancy)


def _iteration(
    model, it, plans, data, train, val, test, config, chooser, origins, score_rows, rows, quiet
):
    """One cut of every targeted layer, then retraining until recovered; appends its history
    row."""
    t0 = time.perf_counter()
    before = measure(model, test, val)
    removed = []
    for layer, plan in plans.items():
        if plan[it - 1] < getattr(model, layer).out_channels:
            model, gone = cut(
                model, layer, plan[it - 1], data, config, chooser, it, origins, score_rows
            )
            removed.append(f"{layer}: " + " ".join(map(str, gone)))
    after_cut = measure(model, test, val)
    # The last retraining runs its whole schedule: stopped early, it ends at a high learning
    # rate (measured on the default net: 97.9 % against 98.6 % on test).
    last = it == config.iterations
    cap, target = (config.final_epochs, None) if last else (config.epochs, before.val)
    after, epochs = retrain(
        model, train, val, test, cap, target, config, config.seed + it, quiet, f"retrain {it}"
    )
    rows.append(_row(it, model, before, after_cut, after, "; ".join(removed), epochs, t0))
    if not quiet and dist.is_main():
        print(f"prune {it}/{config.iterations}: widths {rows[-1]['widths']}, validation accuracy "
              f"{before.val:.2%} -> {after_cut.val:.2%} after the cut -> {after.val:.2%} after "
              f"{epochs} retraining epoch(s) (test {after.test:.2%})", flush=True)  # fmt: skip
    return model
