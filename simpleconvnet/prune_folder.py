"""A pruning run's folder: what each iteration writes there and what ``--resume`` reads back.

Per iteration a checkpoint ``iter_K/``, ``history.csv``, ``scores.csv``, ``redundancy.json``
and, last, ``state.json`` (the commit point); at the end ``final/``. Checkpoint folders are
written whole, then swapped in (:func:`simpleconvnet.checkpoint.atomic_folder`). Rank 0 writes;
every rank waits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from dissect.infra import distributed as dist
from dissect.infra.atomic import atomic_save, atomic_write_text
from dissect.infra.checkpoints import CheckpointMeta, save_model
from simpleconvnet.checkpoint import atomic_folder, load_model, recover_folder
from simpleconvnet.model import SimpleConvNet

__all__ = ["save_folder", "write_iteration", "resume_run", "accuracy_metrics"]


def accuracy_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """A pruned checkpoint's metrics: the test accuracy its history row measured after
    retraining."""
    return {"accuracy": rows[-1]["accuracy_after_retraining"]}


def save_folder(folder: Path, model: nn.Module, meta: CheckpointMeta) -> None:
    """A checkpoint folder written whole, then swapped in: never half old, half new."""
    with atomic_folder(folder) as tmp:
        save_model(tmp, model, meta)


def write_iteration(
    out: Path, model, meta: CheckpointMeta, iteration, rows, score_rows, origins, redundancy
) -> None:
    """Write iteration ``iteration``; ``state.json`` (one file, written last) is the commit
    point: everything ``--resume`` reads is in it or in the ``iter_K/`` folder it names, which
    is complete before it. The tables before it are at most ahead of it after a kill, and the
    iteration trained again writes them again."""
    if dist.is_main():
        folder_meta = meta.with_(metrics=accuracy_metrics(rows), pruning_iteration=iteration)
        save_folder(out / f"iter_{iteration}", model, folder_meta)
        atomic_save(out / "history.csv", lambda p: pd.DataFrame(rows).to_csv(p, index=False))
        atomic_save(out / "scores.csv", lambda p: pd.DataFrame(score_rows).to_csv(p, index=False))
        atomic_write_text(out / "redundancy.json", json.dumps(redundancy, indent=2))
        state = {"done": iteration, "origins": origins, "rows": rows, "score_rows": score_rows,
                 "redundancy": redundancy}  # fmt: skip
        atomic_write_text(out / "state.json", json.dumps(state))
    dist.barrier()


def resume_run(out: Path, device) -> tuple[int, SimpleConvNet | None, dict, list, list, dict]:
    """``(last finished iteration, its model, channel origins, history rows, score rows,
    redundancy report)`` from ``out``; ``(-1, None, ...)`` when no iteration finished."""
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
