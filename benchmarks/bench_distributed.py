"""Scale-out benchmarks: the same answer on 1 and 2 processes, and the throughput of each.

    python -m benchmarks.bench_distributed [--fashion-epochs 1] [--skip-throughput]

Equivalence: `simpleconvnet train` on mnist-5k, 1 process against 2 (gloo, CPU), same seed and
global batch; weights after the first optimiser step and after one epoch, and the accuracies.
A relative difference is per tensor, the largest over the model: `max_rel` is the largest
element's difference over the largest element (strict: Adam turns rounding into a full step for
weights whose gradient is near zero), `norm_rel` is ||w2 - w1|| / ||w1||;
then the data-set-wide dissection statistics of that checkpoint over the 1,000 test images
(activation spread, pruning criteria, class drivers, ablation, contribution shares) and the
channels one pruning cut removes, on 1 process against 2.
Throughput: samples per second on full Fashion-MNIST for 1 process with 2 threads and 2
processes with 1 thread each (the same total number of threads).
GPU (when CUDA is present, named in the JSON): samples per second on one GPU, as one plain
process and under torchrun with NCCL (and 2 GPUs with NCCL where there are two), the weights of
the plain and the NCCL run compared, and one mnist-5k epoch on the GPU against the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from benchmarks.common import ROOT, emit, run_cli


def python(*args: str, threads: int) -> float:
    """Run ``python ARGS`` with ``threads`` OpenMP threads; its wall seconds."""
    import os
    import subprocess

    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return time.perf_counter() - t0


def torchrun(nproc: int, *args: str, threads: int) -> float:
    launcher = ("-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}")
    return python(*launcher, *args, threads=threads)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def equivalence(out: Path) -> dict:
    common = ["train", "--epochs", "1", "--seed", "0", "--snapshot-every", "1", "--device", "cpu",
              "--quiet", "--force"]  # fmt: skip
    run_cli("simpleconvnet", *common, "--out", str(out / "one"), env={"OMP_NUM_THREADS": "2"})
    torchrun(2, "-m", "simpleconvnet", *common, "--out", str(out / "two"), threads=1)
    s1, s2 = (load_file(str(out / n / "snapshots.safetensors")) for n in ("one", "two"))
    first = sorted(s1)[1]
    w1, w2 = (load_file(str(out / n / "last" / "model.safetensors")) for n in ("one", "two"))
    acc = [
        json.loads((out / n / "last" / "model.json").read_text())["metrics"]["test_accuracy"]
        for n in ("one", "two")
    ]
    return {
        "first_step_conv1_max_rel_diff": rel(s2[first], s1[first]),
        "one_epoch_max_rel_diff": max(rel(w2[k], w1[k]) for k in w1),
        "one_epoch_norm_rel_diff": max(float((w2[k] - w1[k]).norm() / w1[k].norm()) for k in w1),
        "one_epoch_share_of_weights_off_by_1e-4": sum(
            int(((w2[k] - w1[k]).abs() > 1e-4).sum()) for k in w1
        )
        / sum(w.numel() for w in w1.values()),
        "accuracy_one_process": acc[0],
        "accuracy_two_processes": acc[1],
        "accuracy_diff_points": abs(acc[0] - acc[1]) * 100,
    }


def dissection(out: Path) -> dict:
    """Statistics of the one-process checkpoint from `equivalence` (over its test split), on 1
    process and on 2."""
    from dissect.infra.datasets import load_split

    script = str(ROOT / "tests" / "scripts" / "dist_stats.py")
    ckpt = str(out / "one" / "last")
    python(script, ckpt, str(out / "stats1.json"), threads=2)
    torchrun(2, script, ckpt, str(out / "stats2.json"), threads=1)
    a, b = (json.loads((out / f"stats{n}.json").read_text()) for n in (1, 2))
    figures: dict = {
        "images": len(load_split("mnist-5k", "test")[1]),
        "pruned_channels_one_process": a["pruned_channels"],
        "pruned_channels_two_processes": b["pruned_channels"],
        "same_channels_pruned": a["pruned_channels"] == b["pruned_channels"],
    }
    diffs = {
        key: rel(
            torch.tensor(b[key], dtype=torch.float64), torch.tensor(a[key], dtype=torch.float64)
        )
        for key in a
        if key != "pruned_channels"
    }
    figures["max_rel_diff"] = diffs
    figures["largest_rel_diff"] = max(diffs.values())
    return figures


def throughput(out: Path, epochs: int) -> dict:
    from dissect.infra.datasets import load_split

    n = len(load_split("fashion-mnist", "train")[1]) * epochs
    common = ["-m", "simpleconvnet", "train", "--dataset", "fashion-mnist", "--epochs", str(epochs),
              "--no-augment", "--snapshot-every", "0", "--device", "cpu", "--quiet", "--force"]  # fmt: skip
    t1 = torchrun(1, *common, "--out", str(out / "fm1"), threads=2)
    t2 = torchrun(2, *common, "--out", str(out / "fm2"), threads=1)
    seconds = {}
    for name in ("fm1", "fm2"):
        history = json.loads((out / name / "last" / "model.json").read_text())["history"]
        seconds[name] = history[-1]["seconds"]
    return {
        "samples": n,
        "one_process_2_threads_samples_per_s": n / seconds["fm1"],
        "two_processes_1_thread_samples_per_s": n / seconds["fm2"],
        "efficiency_2_vs_1": seconds["fm1"] / seconds["fm2"],
        "wall_seconds_with_startup": {"one": t1, "two": t2},
        "note": "seconds are the training loop's own (train + per-epoch evaluation), from history",
    }


def _weights_and_accuracy(folder: Path) -> tuple[dict, float]:
    meta = json.loads((folder / "last" / "model.json").read_text())
    return load_file(str(folder / "last" / "model.safetensors")), meta.metrics["test_accuracy"]


def _samples_per_s(folder: Path, n: int) -> float:
    return n / json.loads((folder / "last" / "model.json").read_text())["history"][-1]["seconds"]


def gpu(out: Path, epochs: int) -> dict:
    from dissect.infra.datasets import load_split

    if not torch.cuda.is_available():
        return {"note": "no CUDA GPU on this machine"}
    n = len(load_split("fashion-mnist", "train")[1]) * epochs
    common = ["-m", "simpleconvnet", "train", "--dataset", "fashion-mnist", "--epochs", str(epochs),
              "--no-augment", "--snapshot-every", "0", "--device", "cuda", "--quiet", "--force"]  # fmt: skip
    run_cli(*common[1:], "--out", str(out / "gpu1"))
    torchrun(1, *common, "--out", str(out / "gpu-nccl1"), threads=4)
    (w1, a1), (wn, an) = (_weights_and_accuracy(out / n_) for n_ in ("gpu1", "gpu-nccl1"))
    figures = {
        "device": torch.cuda.get_device_name(0),
        "gpus": torch.cuda.device_count(),
        "samples": n,
        "one_gpu_samples_per_s": _samples_per_s(out / "gpu1", n),
        "one_gpu_torchrun_nccl_samples_per_s": _samples_per_s(out / "gpu-nccl1", n),
        "plain_vs_nccl_max_rel_diff": max(rel(wn[k], w1[k]) for k in w1),
        "accuracy_plain": a1,
        "accuracy_nccl": an,
    }
    if torch.cuda.device_count() >= 2:
        torchrun(2, *common, "--out", str(out / "gpu-nccl2"), threads=4)
        figures["two_gpus_nccl_samples_per_s"] = _samples_per_s(out / "gpu-nccl2", n)
        figures["efficiency_2_vs_1"] = figures["two_gpus_nccl_samples_per_s"] / (
            figures["one_gpu_samples_per_s"] * 2
        )
    else:
        figures["two_gpus"] = "not measured: one GPU on this machine"
    mnist = ["train", "--epochs", "1", "--seed", "0", "--snapshot-every", "0", "--quiet", "--force"]
    for name in ("gpu-mnist5k", "gpu-mnist5k-again"):
        run_cli("simpleconvnet", *mnist, "--device", "cuda", "--out", str(out / name))
    (wa, _), (wb, _) = (
        _weights_and_accuracy(out / n_) for n_ in ("gpu-mnist5k", "gpu-mnist5k-again")
    )
    figures["mnist5k_one_epoch_gpu_twice_max_rel_diff"] = max(rel(wb[k], wa[k]) for k in wa)
    if (out / "one").is_dir():
        (wc, ac), (wg, ag) = (_weights_and_accuracy(out / n_) for n_ in ("one", "gpu-mnist5k"))
        figures["mnist5k_one_epoch_gpu_vs_cpu"] = {
            "max_rel_diff": max(rel(wg[k], wc[k]) for k in wc),
            "accuracy_cpu": ac,
            "accuracy_gpu": ag,
        }
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="runs/bench-distributed")
    p.add_argument("--fashion-epochs", type=int, default=1)
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    figures = {"equivalence_mnist5k": equivalence(out), "dissection_mnist5k": dissection(out)}
    if not args.skip_throughput:
        figures["throughput_fashion_mnist"] = throughput(out, args.fashion_epochs)
    figures["gpu"] = gpu(out, args.fashion_epochs)
    emit(figures)


if __name__ == "__main__":
    main()
