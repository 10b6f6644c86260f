"""Pruning benchmarks on mnist-5k: from the default SimpleConvNet (trained here when no
checkpoint is given) to 8/16, per seed: accuracy before and after, widths, conv parameter
counts, seconds; and, for the comparison seeds, the accuracy right after each cut with the
combined criterion against channels chosen at random (same widths, same retraining).

    python -m benchmarks.bench_prune --seeds 0,1,2 --random-seeds 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import emit, mean_spread, run_cli


def unpruned(seed: int, root: Path) -> Path:
    for folder in (Path(f"runs/bench-train/mnist5k-seed{seed}"), root / f"train-seed{seed}"):
        if (folder / "last" / "model.json").is_file():
            return folder / "last"
    run_cli(
        "simpleconvnet",
        "train",
        "--seed",
        str(seed),
        "--out",
        str(root / f"train-seed{seed}"),
        "--quiet",
        "--force",  # no finished checkpoint there: whatever a killed run left is replaced
    )
    return root / f"train-seed{seed}" / "last"


def prune_once(ckpt: Path, out: Path, seed: int, random: bool) -> dict:
    t0 = time.perf_counter()
    run_cli("simpleconvnet", "prune", str(ckpt), "--out", str(out), "--seed", str(seed), "--quiet",
            "--force", *(["--random"] if random else []))  # fmt: skip
    seconds = time.perf_counter() - t0
    h = pd.read_csv(out / "history.csv")
    red = json.loads((out / "redundancy.json").read_text())
    cuts = h[h["iteration"] > 0]
    return {
        "seconds": seconds, "widths": h["widths"].iloc[-1], "conv3_dropped": bool(red.get("dropped")),
        "unpruned_accuracy": float(h["accuracy_before_cut"].iloc[0]),
        "pruned_accuracy": float(h["accuracy_after_retraining"].iloc[-1]),
        "conv_parameters_before": _conv_params(ckpt),
        "conv_parameters_after": int(h["conv_parameters"].iloc[-1]),
        "mean_accuracy_right_after_cut": float(cuts["accuracy_after_cut"].mean()),
        "accuracy_right_after_each_cut": cuts["accuracy_after_cut"].round(4).tolist(),
        "redundancy": red.get("reason", ""),
    }  # fmt: skip


def _conv_params(ckpt: Path) -> int:
    from dissect.infra.checkpoints import load_checkpoint
    from simpleconvnet.surgery import conv_parameter_count

    return conv_parameter_count(load_checkpoint(ckpt)[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--random-seeds", default="0", help="seeds also pruned with random choice ('' for none)"
    )
    p.add_argument("--out", default="runs/bench-prune")
    args = p.parse_args()
    root = Path(args.out)
    runs, comparison = [], []
    for seed in map(int, args.seeds.split(",")):
        r = prune_once(unpruned(seed, root), root / f"seed{seed}", seed, random=False)
        r["seed"] = seed
        r["conv_parameter_ratio"] = r["conv_parameters_before"] / r["conv_parameters_after"]
        r["accuracy_loss_points"] = (r["unpruned_accuracy"] - r["pruned_accuracy"]) * 100
        runs.append(r)
    for seed in [int(s) for s in args.random_seeds.split(",") if s]:
        rnd = prune_once(unpruned(seed, root), root / f"seed{seed}-random", seed, random=True)
        crit = next(r for r in runs if r["seed"] == seed)
        comparison.append({"seed": seed, "criterion_mean_accuracy_right_after_cut": crit["mean_accuracy_right_after_cut"],
                           "random_mean_accuracy_right_after_cut": rnd["mean_accuracy_right_after_cut"],
                           "criterion_each_cut": crit["accuracy_right_after_each_cut"], "random_each_cut": rnd["accuracy_right_after_each_cut"],
                           "random_final_accuracy": rnd["pruned_accuracy"]})  # fmt: skip
    emit({
        "runs": runs,
        "pruned_accuracy": mean_spread([r["pruned_accuracy"] for r in runs]),
        "unpruned_accuracy": mean_spread([r["unpruned_accuracy"] for r in runs]),
        "criterion_vs_random": comparison,
    })  # fmt: skip


if __name__ == "__main__":
    main()
