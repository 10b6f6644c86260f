"""Training benchmarks (issue: foundation).

- accuracy of the default SimpleConvNet on the mnist-5k test split over several seeds;
- optional: accuracy on full Fashion-MNIST (Debian's dataset-fashion-mnist);
- throughput of our training step against a bare PyTorch loop over pre-loaded tensors
  (same model, batch size and optimiser), measured in the same run.

    python benchmarks/bench_train.py [--seeds 0,1,2] [--epochs 15] [--fashion-epochs 8]
        [--device auto]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import emit, mean_spread, run_cli
from dissect.infra.datasets import load_split
from dissect.infra.runtime import resolve_device
from simpleconvnet.model import SimpleConvNet, init_weights
from simpleconvnet.train import TrainConfig, fit


def accuracy_runs(seeds: list[int], epochs: int, out: Path, device: str) -> dict:
    accs, seconds = [], []
    for seed in seeds:
        folder = out / f"mnist5k-seed{seed}"
        t0 = time.perf_counter()
        run_cli(
            "simpleconvnet",
            "train",
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
            "--out",
            str(folder),
            "--device",
            device,
            "--quiet",
            "--force",  # a re-run of the benchmark trains again into the same folder
        )
        seconds.append(time.perf_counter() - t0)
        accs.append(
            json.loads((folder / "last" / "model.json").read_text())["metrics"]["test_accuracy"]
        )
    return {"seeds": seeds, "epochs": epochs, "test_accuracy": accs, "summary": mean_spread(accs),
            "command_seconds": seconds}  # fmt: skip


def fashion_run(epochs: int, out: Path, device: str) -> dict:
    folder = out / "fashion"
    t0 = time.perf_counter()
    run_cli("simpleconvnet", "train", "--dataset", "fashion-mnist", "--epochs", str(epochs),
            "--no-augment", "--out", str(folder), "--device", device, "--quiet", "--force")  # fmt: skip
    meta = json.loads((folder / "last" / "model.json").read_text())
    return {
        "epochs": epochs,
        "test_accuracy": meta.metrics["test_accuracy"],
        "seconds": time.perf_counter() - t0,
    }


def bare_loop(model, images, labels, batch_size: int, generator: torch.Generator) -> None:
    """The reference: a plain PyTorch loop over pre-loaded tensors."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(images), generator=generator)
    model.train()
    for start in range(0, len(images), batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = F.nll_loss(model(images[idx]), labels[idx])
        loss.backward()
        optimizer.step()


def throughput(device: torch.device, rounds: int = 3) -> dict:
    train = tuple(t.to(device) for t in load_split("mnist-5k", "train"))
    tiny_test = (train[0][:10], train[1][:10])
    config = TrainConfig(
        epochs=1, batch_size=64, lr=1e-3, augment=False, schedule="constant", snapshot_every=0
    )
    ours, ref = [], []
    for r in range(rounds):
        model = SimpleConvNet()
        init_weights(model, torch.Generator().manual_seed(r))
        model.to(device)
        t0 = time.perf_counter()
        bare_loop(model, *train, config.batch_size, torch.Generator().manual_seed(r))
        _sync(device)
        ref.append(len(train[0]) / (time.perf_counter() - t0))
        model = SimpleConvNet()
        init_weights(model, torch.Generator().manual_seed(r))
        model.to(device)
        t0 = time.perf_counter()
        fit(model, train, tiny_test, config, quiet=True)
        _sync(device)
        ours.append(len(train[0]) / (time.perf_counter() - t0))
    best_ours, best_ref = max(ours), max(ref)
    return {"ours_samples_per_s": best_ours, "reference_samples_per_s": best_ref, "ratio": best_ours / best_ref,
            "rounds": rounds, "all_ours": ours, "all_reference": ref}  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--fashion-epochs", type=int, default=0, help="0 skips Fashion-MNIST")
    p.add_argument("--out", default="runs/bench-train")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    args = p.parse_args()
    out = Path(args.out)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    figures: dict = {"device": name, "throughput": throughput(device)}
    if not args.skip_accuracy:
        figures["mnist5k"] = accuracy_runs(
            [int(s) for s in args.seeds.split(",")], args.epochs, out, str(device)
        )
    if args.fashion_epochs:
        figures["fashion_mnist"] = fashion_run(args.fashion_epochs, out, str(device))
    emit(figures)


if __name__ == "__main__":
    main()
