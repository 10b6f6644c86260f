"""The training recipe (issue: recipe and pipeline cost): today's recipe, kept as the reference,
against the default one and any candidates, on the same seeds in the same run.

Each recipe trains ``simpleconvnet train`` once per seed (processes side by side, ``--jobs``).
For every run: the test accuracy of ``best/`` (the epoch the validation split chose) with its
95 % Wilson interval, the validation accuracy that chose it, and the training seconds (the
epochs' own time, start-up excluded). Per recipe: the means, and the training time over the
reference's. ``chosen_on_validation`` names the recipe of highest mean validation accuracy:
the only figure a choice may look at (test accuracies are reported, never chosen by).

    python -m benchmarks.bench_recipe [--dataset mnist-5k] [--seeds 0,1,2]
        [--recipes reference,default] [--jobs 2] [--device auto] [--out runs-bench/recipe]
        [--data-dir DIR]

``--recipes all`` runs every candidate of the data set (:data:`RECIPES`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, emit, mean_spread
from reports.audit import wilson_interval

#: Recipes as ``simpleconvnet train`` options. ``reference`` is the recipe before this issue
#: (digits' affine on every data set, no smoothing); ``default`` is no option at all (the data
#: set's own: on mnist-5k the same as the reference, see simpleconvnet.data.SMOOTHING).
#: batch 128 at a higher peak rate for 20 epochs (on the H100: 0.75 of the reference's time)
_BATCH_128 = ["--batch-size", "128", "--lr", "5e-3", "--epochs", "20"]
RECIPES: dict[str, dict[str, list[str]]] = {
    "mnist-5k": {
        "reference": ["--augment", "digits", "--label-smoothing", "0"],
        "default": [],
        "smoothing": ["--label-smoothing", "0.1"],
        "elastic2": ["--elastic", "2", "--label-smoothing", "0"],
        "elastic3": ["--elastic", "3", "--label-smoothing", "0.1"],
        "elastic2-wd": ["--elastic", "2", "--label-smoothing", "0.1", "--weight-decay", "1e-4"],
        "elastic2-b128": ["--elastic", "2", "--label-smoothing", "0.1", *_BATCH_128],
        "elastic2-lr": ["--elastic", "2", "--label-smoothing", "0.1", "--lr", "5e-3"],
        "smoothing-b128": ["--elastic", "0", "--label-smoothing", "0.1", *_BATCH_128],
        "smoothing2": ["--elastic", "0", "--label-smoothing", "0.2"],
        "smoothing-wd": ["--elastic", "0", "--label-smoothing", "0.1", "--weight-decay", "5e-4"],
    },
    "fashion-mnist": {
        "reference": ["--augment", "digits", "--label-smoothing", "0"],
        "default": [],
        "no-smoothing": ["--label-smoothing", "0"],
        "longer": ["--epochs", "25"],
    },
}


def train_once(dataset: str, name: str, options: list[str], seed: int, out: Path,
               device: str, threads: int, data_dir: str | None) -> dict[str, Any]:  # fmt: skip
    folder = out / dataset / f"{name}-seed{seed}"
    data = ["--data-dir", data_dir] if data_dir else []
    argv = [sys.executable, "-m", "simpleconvnet", "train", "--dataset", dataset, *data, *options,
            "--seed", str(seed), "--out", str(folder), "--device", device, "--snapshot-every", "0",
            "--quiet", "--force"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    meta = json.loads((folder / "best" / "model.json").read_text())
    last = json.loads((folder / "last" / "model.json").read_text())
    history = last["history"] if isinstance(last.get("history"), list) else []
    m = meta["metrics"]
    confusion = (folder / "confusion.csv").read_text().strip().splitlines()
    n_test = sum(int(v) for row in confusion[1:] for v in row.split(",")[1:])
    hits = round(m["test_accuracy"] * n_test)
    low, high = wilson_interval(hits, n_test)
    seconds = history[-1]["seconds"] if history else float("nan")
    return {"seed": seed, "test_accuracy": m["test_accuracy"], "test_interval": [low, high],
            "n_test": n_test, "val_accuracy": m.get("best_val_accuracy"),
            "best_epoch": m.get("best_epoch"), "epochs_run": len(history),
            "train_seconds": seconds, "command_seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", default="mnist-5k", choices=sorted(RECIPES))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--recipes", default="reference,default", help="comma-separated, or all")
    p.add_argument("--jobs", type=int, default=1, help="trainings side by side")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs-bench/recipe")
    p.add_argument("--data-dir", default=None, help="folder of the data set (see --help of train)")
    p.add_argument("--extra", default="", help="options added to every run, e.g. '--epochs 1'")
    args = p.parse_args()
    table = RECIPES[args.dataset]
    table = {name: [*options, *shlex.split(args.extra)] for name, options in table.items()}
    names = list(table) if args.recipes == "all" else args.recipes.split(",")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown recipes {unknown}: use {', '.join(table)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    jobs = [(n, s) for s in seeds for n in names]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda job: train_once(args.dataset, job[0], table[job[0]], job[1],
                                                    Path(args.out), args.device, threads,
                                                    args.data_dir), jobs))  # fmt: skip
    results: dict[str, Any] = {}
    for name in names:
        mine = [r for (n, _), r in zip(jobs, runs, strict=True) if n == name]
        results[name] = {
            "options": table[name],
            "runs": mine,
            "test_accuracy": mean_spread([r["test_accuracy"] for r in mine]),
            "val_accuracy": mean_spread([r["val_accuracy"] for r in mine]),
            "train_seconds_mean": sum(r["train_seconds"] for r in mine) / len(mine),
        }
    if "reference" in results:
        ref = results["reference"]["train_seconds_mean"]
        for entry in results.values():
            entry["time_over_reference"] = entry["train_seconds_mean"] / ref
    chosen = max(names, key=lambda n: results[n]["val_accuracy"]["mean"])
    figures: dict[str, Any] = {"dataset": args.dataset, "seeds": seeds, "jobs": args.jobs,
                               "recipes": results, "chosen_on_validation": chosen}  # fmt: skip
    if "default" in results:
        d = results["default"]
        figures["default_mean_test_accuracy"] = d["test_accuracy"]["mean"]
        figures["default_time_over_reference"] = d.get("time_over_reference")
    emit(figures)


if __name__ == "__main__":
    main()
