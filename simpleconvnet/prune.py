"""Iterative outer-channel pruning: score, cut, retrain, repeat; plus the redundant-layer step.

Pure parts: :func:`schedule` (widths per iteration) and :func:`choose_by_score` /
:func:`choose_at_random` (which channels stay). :func:`prune` is the loop; it writes, per
iteration, a checkpoint ``iter_K/`` and appends to ``history.csv`` and ``scores.csv``, and
resumes from the last finished iteration (``state.json``, written last, says which; every
checkpoint folder is written whole, then swapped in: see
:func:`simpleconvnet.checkpoint.atomic_folder`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dissect.infra import distributed as dist
from dissect.infra.atomic import atomic_save, atomic_write_text
from dissect.infra.checkpoints import save_model
from dissect.infra.errors import AuditError
from dissect.infra.runtime import progress
from simpleconvnet.checkpoint import atomic_folder, load_model, recover_folder
from simpleconvnet.criteria import CRITERIA, combine
from simpleconvnet.model import SimpleConvNet
from simpleconvnet.redundancy import COPY_CORRELATION, copy_correlation, refit_head_without
from simpleconvnet.surgery import conv_parameter_count, drop_last_conv, remove_channels
from simpleconvnet.train import TrainConfig, evaluate, fit

__all__ = ["PruneConfig", "PruneResult", "schedule", "choose_by_score", "choose_at_random", "prune"]

Data = tuple[torch.Tensor, torch.Tensor]
Chooser = Callable[[str, torch.Tensor, int, int], list[int]]
DEFAULT_WEIGHTS = {"variation": 1.0, "structure": 1.0, "superstimulus": 1.0, "selectivity": 1.0}


@dataclass(frozen=True)
class PruneConfig:
    iterations: int = 7
    # conv3's width applies while it is kept; the redundant-layer test may then drop it
    targets: tuple[int, ...] = (8, 16, 16)
    budget: float = 0.5  # accuracy points the pruned net may lose against the unpruned one
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    epochs: int = 3
    final_epochs: int = 40
    lr: float = 1e-3
    seed: int = 0
    drop_redundant: bool = True
    score_images: int = 1000
    superstimulus_steps: int = 128

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(CRITERIA)
        if unknown:
            raise AuditError(f"unknown criteria {sorted(unknown)}: use {', '.join(CRITERIA)}")
        if self.iterations < 1 or min(self.targets, default=1) < 1:
            raise AuditError("--iterations and every --targets width must be at least 1")


@dataclass
class PruneResult:
    model: SimpleConvNet
    history: pd.DataFrame
    scores: pd.DataFrame
    redundancy: dict[str, Any]


def schedule(start: int, target: int, iterations: int) -> list[int]:
    """Widths after each of ``iterations`` cuts: geometric from ``start`` to ``target``."""
    if target >= start:
        return [start] * iterations
    ratio = (target / start) ** (1 / iterations)
    widths = [max(target, round(start * ratio**k)) for k in range(1, iterations + 1)]
    widths[-1] = target
    return widths


def choose_by_score(layer: str, combined: torch.Tensor, n_keep: int, iteration: int) -> list[int]:
    """Keep the ``n_keep`` channels with the highest combined score (ties: lower index)."""
    order = torch.argsort(-combined, stable=True)
    return sorted(order[:n_keep].tolist())


def choose_at_random(seed: int) -> Chooser:
    """A baseline chooser: ``n_keep`` channels drawn at random (seeded per layer/iteration)."""

    def choose(layer: str, combined: torch.Tensor, n_keep: int, iteration: int) -> list[int]:
        g = torch.Generator().manual_seed(seed * 7919 + iteration * 31 + int(layer[-1]))
        return sorted(torch.randperm(len(combined), generator=g, device=g.device)[:n_keep].tolist())

    return choose


def _score_layer(
    model, layer, data, config: PruneConfig
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    options = {"superstimulus": {"steps": config.superstimulus_steps}}
    scores = {
        name: CRITERIA[name](model, layer, data, **options.get(name, {})).cpu()
        for name, w in config.weights.items()
        if w > 0
    }
    return scores, combine(scores, config.weights)


def _score_data(train: Data, n: int) -> Data:
    stride = max(1, len(train[0]) // n)
    return train[0][::stride][:n], train[1][::stride][:n]


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
    data = _score_data(train, config.score_images)
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


def _origin_after(origin: list[int], keep: list[int]) -> list[int]:
    return [origin[k] for k in keep]


def _save_folder(folder: Path, model, meta: dict[str, Any]) -> None:
    """A checkpoint folder written whole, then swapped in: never half old, half new."""
    with atomic_folder(folder) as tmp:
        save_model(tmp, model, meta)


def _write(out: Path, model, meta, iteration, rows, score_rows, origins, redundancy) -> None:
    """Write iteration ``iteration``; ``state.json`` (one file, written last) is the commit
    point: everything ``--resume`` reads is in it or in the ``iter_K/`` folder it names, which
    is complete before it. The tables before it are at most ahead of it after a kill, and the
    iteration trained again writes them again."""
    if dist.is_main():
        _save_folder(out / f"iter_{iteration}", model, {**meta, "pruning_iteration": iteration})
        atomic_save(out / "history.csv", lambda p: pd.DataFrame(rows).to_csv(p, index=False))
        atomic_save(out / "scores.csv", lambda p: pd.DataFrame(score_rows).to_csv(p, index=False))
        atomic_write_text(out / "redundancy.json", json.dumps(redundancy, indent=2))
        state = {"done": iteration, "origins": origins, "rows": rows, "score_rows": score_rows,
                 "redundancy": redundancy}  # fmt: skip
        atomic_write_text(out / "state.json", json.dumps(state))
    dist.barrier()


def _resume(out: Path, device) -> tuple[int, SimpleConvNet | None, dict, list, list, dict]:
    state_path = out / "state.json"
    if not state_path.is_file():
        return -1, None, {}, [], [], {}
    state = json.loads(state_path.read_text())
    folder = out / f"iter_{state['done']}"
    if dist.is_main():
        recover_folder(folder)  # a kill inside a folder swap (see atomic_folder)
    dist.barrier()
    model, _ = load_model(folder, SimpleConvNet, map_location=device)
    if "redundancy" in state:
        redundancy = state["redundancy"]
    else:  # written by an older version: redundancy.json beside it
        redundancy = json.loads((out / "redundancy.json").read_text())
    return state["done"], model, state["origins"], state["rows"], state["score_rows"], redundancy


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


def _cut(model, layer, width, data, config, chooser, iteration, origins, score_rows):
    """Score ``layer``, keep ``width`` channels; returns the smaller model and what went."""
    scores, combined = _score_layer(model, layer, data, config)
    keep = chooser(layer, combined, width, iteration)
    origin = origins[layer]
    for c in range(len(combined)):
        score_rows.append({
            "iteration": iteration, "layer": layer, "channel": c + 1, "original_channel": origin[c] + 1,
            **{k: float(v[c]) for k, v in scores.items()}, "combined": float(combined[c]), "kept": c in keep,
        })  # fmt: skip
    removed = [origin[c] + 1 for c in range(len(combined)) if c not in keep]
    origins[layer] = _origin_after(origin, keep)
    return remove_channels(model, layer, keep), removed


def prune(
    model: SimpleConvNet,
    train: Data,
    test: Data,
    config: PruneConfig,
    *,
    out_dir: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
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
    meta = {**(metadata or {}), "prune_config": asdict(config)}
    done, resumed, origins, rows, score_rows, redundancy = (
        _resume(out, device) if (resume and out) else (-1, None, {}, [], [], {})
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
            _write(out, model, meta, 0, rows, score_rows, origins, redundancy)
        done = 0
    else:
        model = resumed
    targets = dict(zip(model.conv_names, config.targets, strict=False))
    start_widths = dict(zip(model.conv_names, map(int, rows[0]["widths"].split("/")), strict=False))
    plans = {
        layer: schedule(start_widths[layer], t, config.iterations) for layer, t in targets.items()
    }
    data = _score_data(train, config.score_images)
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
            _write(out, model, meta, it, rows, score_rows, origins, redundancy)
    if out and dist.is_main():
        _save_folder(
            out / "final", model, {**meta, "pruning_history": rows, "redundancy": redundancy}
        )
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
            model, gone = _cut(
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
