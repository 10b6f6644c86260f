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
from simpleconvnet.redundancy import COPY_CORRELATION, copy_correlation, refit_head_without
from simpleconvnet.selection import (
    Chooser,
    choose_at_random,
    choose_by_score,
    cut,
    schedule,
    score_data,
)
from simpleconvnet.surgery import conv_parameter_count, drop_last_conv
from simpleconvnet.train import TrainConfig, evaluate, fit

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


def _retrain(model, train, test, epochs: int, lr: float, seed: int, quiet: bool, desc: str):
    cfg = TrainConfig(epochs=epochs, lr=lr, seed=seed, snapshot_every=0)
    return fit(model, train, test, cfg, quiet=quiet, desc=desc).final.accuracy


def _redundancy_step(
    model, train, test, config, baseline, with_layer, quiet
) -> tuple[SimpleConvNet, dict]:
    """Correlations of every conv layer after the first with the one before it; and, for a
    third conv layer, the net without it: fc4 refitted in closed form, then retrained
    ``final_epochs``. The layer goes when that net stays within ``budget`` points of the
    unpruned accuracy (``baseline``); ``with_layer`` (the pruned net with it) is reported."""
    data = score_data(train, config.score_images)
    report: dict[str, Any] = {
        "baseline_accuracy": baseline,
        "accuracy_with": with_layer,
        "layers": {},
    }
    for layer in model.conv_names[1:]:
        best, where = copy_correlation(model, layer, data[0])
        report["layers"][layer] = {
            "mean_best_correlation": float(best.mean()),
            "best_correlation": [round(float(b), 4) for b in best],
            "best_match_in_previous_layer": [int(w) + 1 for w in where],
        }
    report["dropped"] = False
    if len(model.conv_names) < 3 or not config.drop_redundant:
        report["reason"] = (
            "no third conv layer to test" if len(model.conv_names) < 3 else "not asked"
        )
        return model, report
    without = drop_last_conv(model, torch.Generator().manual_seed(config.seed))
    r2 = refit_head_without(model, without, train[0])
    right_after = evaluate(without, *test).accuracy
    acc = _retrain(
        without, train, test, config.final_epochs, config.lr, config.seed, quiet, "without conv3"
    )
    loss = (baseline - acc) * 100
    report.update(head_refit_r2=r2, accuracy_right_after_removal=right_after, accuracy_without=acc,
                  loss_points=loss, dropped=loss <= config.budget + 1e-9)  # fmt: skip
    mean_corr = report["layers"][model.conv_names[-1]]["mean_best_correlation"]
    verb = "dropped" if report["dropped"] else "kept"
    report["reason"] = (
        f"conv3 {verb}: a linear map of conv2's features reproduces {r2:.1%} of the variance of what "
        f"conv3 fed to fc4; without conv3 (fc4 refitted, then retrained {config.final_epochs} epochs) "
        f"accuracy is {acc:.2%} against {baseline:.2%} unpruned ({abs(loss):.2f} points "
        f"{'lost' if loss > 0 else 'gained'}, budget {config.budget}) and {with_layer:.2%} pruned with conv3. Channel by channel, conv3's maps correlate with "
        f"their best-matching conv2 map at {mean_corr:.2f} on average: "
        + ("it copies single conv2 channels." if mean_corr >= COPY_CORRELATION
           else "it recombines conv2 rather than copying single channels.")
    )  # fmt: skip
    return (without if report["dropped"] else model), report


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


def _row(iteration, model, before, after_cut, after_retrain, removed, t0) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "widths": "/".join(str(c) for c in model.config.convs),
        "conv_parameters": conv_parameter_count(model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "accuracy_before_cut": before,
        "accuracy_after_cut": after_cut,
        "accuracy_after_retraining": after_retrain,
        "removed": removed,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def prune(
    model: SimpleConvNet,
    train: Data,
    test: Data,
    config: PruneConfig,
    *,
    out_dir: str | Path | None = None,
    metadata: CheckpointMeta | dict[str, Any] | None = None,
    chooser: Chooser = choose_by_score,
    resume: bool = False,
    quiet: bool = False,
) -> PruneResult:
    """Prune ``model`` (on its device) to ``config.targets`` over ``config.iterations`` cuts.

    Row 0 is the unpruned model. Iterations 1..N each score every targeted conv layer, cut it
    to the scheduled width, evaluate, retrain and evaluate again (the last one retrains
    ``final_epochs``). Iteration N+1 is the redundant-layer step (see :func:`_redundancy_step`). Channel numbers in the outputs are 1-based;
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
        acc = evaluate(model, *test).accuracy
        origins = {
            layer: list(range(getattr(model, layer).out_channels)) for layer in model.conv_names
        }
        rows.append(_row(0, model, acc, acc, acc, "", time.perf_counter()))
        if out:
            write_iteration(out, model, meta, 0, rows, score_rows, origins, redundancy)
        done = 0
    else:
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
            before = evaluate(model, *test).accuracy
            model, redundancy = _redundancy_step(
                model, train, test, config, rows[0]["accuracy_before_cut"], before, quiet
            )
            after = evaluate(model, *test).accuracy
            cut = redundancy.get("accuracy_right_after_removal", after)
            rows.append(
                _row(it, model, before, cut, after, "conv3" if redundancy["dropped"] else "", t0)
            )
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
    model, it, plans, data, train, test, config, chooser, origins, score_rows, rows, quiet
):
    """One cut of every targeted layer, then retraining; appends its history row."""
    t0 = time.perf_counter()
    before = evaluate(model, *test).accuracy
    removed = []
    for layer, plan in plans.items():
        if plan[it - 1] < getattr(model, layer).out_channels:
            model, gone = cut(
                model, layer, plan[it - 1], data, config, chooser, it, origins, score_rows
            )
            removed.append(f"{layer}: " + " ".join(map(str, gone)))
    after_cut = evaluate(model, *test).accuracy
    last = it == config.iterations
    epochs = config.final_epochs if last else config.epochs
    after = _retrain(
        model, train, test, epochs, config.lr, config.seed + it, quiet, f"retrain {it}"
    )
    rows.append(_row(it, model, before, after_cut, after, "; ".join(removed), t0))
    if not quiet and dist.is_main():
        print(f"prune {it}/{config.iterations}: widths {rows[-1]['widths']}, accuracy {before:.2%} -> "
              f"{after_cut:.2%} after the cut -> {after:.2%} after retraining", flush=True)  # fmt: skip
    return model
