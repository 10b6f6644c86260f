"""Foreign networks benchmark: the three ConvNets of tests/dissect/foreign_nets.py (written the
way other people write them), imported by file path and trained 2 epochs on mnist-5k, then put
under the microscope on the 1,000 test digits:

- exactness: the largest relative error of the conv decompositions (every conv layer, every outer
  channel, ``|bias + sum_j a_j - y| / (sum_j |a_j| + |bias|)`` elementwise, the model as trained)
  and of the class-score decompositions (every conv layer); target <= 1e-5;
- the adapter's cost: capturing every conv layer's input and output with ``Specimen.run`` against
  a plain forward of the same images (best of 5 each, interleaved); target ratio <= 1.5;
- superstimuli of the last conv layer (256 steps; a channel silent on its random start begins
  from the training digit that excites it most): the share of channels whose reached
  post-activation mean beats the best of 100 test digits (10 per class); target >= 0.9. Also
  shown: the share among the channels that fire on at least one of the 1,000 test digits (a
  channel silent on every digit has a best digit mean of 0, which a superstimulus beats only by
  making the channel fire at all).

    python benchmarks/bench_foreign.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the benchmarks package sits beside dissect
    sys.path.insert(0, str(ROOT))

from benchmarks.common import emit  # noqa: E402
from dissect.activations import layer_activation  # noqa: E402
from dissect.contributions import layer_contributions  # noqa: E402
from dissect.foreign import import_model  # noqa: E402
from dissect.head import score_contributions  # noqa: E402
from dissect.infra.datasets import load_split, stratified_sample  # noqa: E402
from dissect.specimen import Specimen  # noqa: E402
from dissect.superstimuli import layer_superstimuli  # noqa: E402

NETS_FILE = ROOT / "tests" / "dissect" / "foreign_nets.py"
NETS = ("ExampleNet", "SequentialNet", "lenet5")
EXACT, COST, BEATS = 1e-5, 1.5, 0.9


def load_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    return load_split("mnist-5k", split="train"), load_split("mnist-5k", split="test")


def fit(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int
) -> nn.Module:
    """The pytorch/examples MNIST recipe (Adadelta at lr 1.0, the rate times 0.7 each epoch),
    batches of 64, a seeded shuffle per epoch; cross-entropy serves raw scores and
    log-probabilities alike."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=g)
        for start in range(0, len(images), 64):
            idx = order[start : start + 64]
            optimizer.zero_grad()
            F.cross_entropy(model(images[idx]), labels[idx]).backward()
            optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def conv_error(specimen: Specimen, images: torch.Tensor) -> float:
    worst = 0.0
    for layer in specimen.conv_names:
        for o in range(int(specimen.conv(layer).weight.shape[0])):
            _, a, bias, y = layer_contributions(specimen, layer, images, o)
            scale = (a.abs().sum(1) + bias.abs()).double().clamp(min=1e-30)
            err = (bias + a.sum(1) - y).abs().double() / scale
            worst = max(worst, float(err.max()))
    return worst


def best_of(fns: list[Callable[[], object]], repeats: int = 5) -> list[float]:
    """Best time of each of ``fns`` over ``repeats`` runs, the runs interleaved so that every
    function meets the same load on a shared machine."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]  # type: list[list[float]]
    for _ in range(repeats):
        for fn, kept in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            kept.append(time.perf_counter() - t0)
    return [min(kept) for kept in times]


Split = tuple[torch.Tensor, torch.Tensor]


def audit(name: str, train: Split, test: Split, epochs: int, steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = import_model(f"{NETS_FILE}:{name}")
    t0 = time.perf_counter()
    fit(model, train[0], train[1], epochs, seed)
    train_s = time.perf_counter() - t0
    images, labels = test
    specimen = Specimen(model)
    convs = specimen.conv_names
    with torch.no_grad():
        accuracy = float((specimen.scores(images).argmax(1) == labels).float().mean())

    conv_rel = conv_error(specimen, images)
    score_rel = {
        layer: score_contributions(specimen, images, layer).relative_error for layer in convs
    }

    needs = {f"{layer}:in" for layer in convs} | set(convs)
    with torch.no_grad():
        # the last: the same captures in a pass run on to the class scores (no early stop)
        plain_s, capture_s, full_s = best_of([
            lambda: model(images),
            lambda: specimen.run(images, needs),
            lambda: specimen.run(images, needs | {"logits"}),
        ])  # fmt: skip

    last = convs[-1]
    digits = images[stratified_sample(labels, 10, seed)]
    with torch.no_grad():
        best_digit = layer_activation(specimen, last, digits).mean((2, 3)).amax(0).cpu()
        fires = (layer_activation(specimen, last, images).amax((0, 2, 3)) > 0).cpu()
    t0 = time.perf_counter()
    stimuli = layer_superstimuli(specimen, last, steps=steps, seed=seed, data=train[0])
    stimuli_s = time.perf_counter() - t0
    beaten = stimuli.activation > best_digit
    return {
        "conv_layers": convs, "logits": specimen.logits_name,
        "channels": [int(specimen.conv(layer).weight.shape[0]) for layer in convs],
        "train_seconds": round(train_s, 2), "test_accuracy": accuracy,
        "conv_max_rel_error": conv_rel, "score_max_rel_error": score_rel,
        "plain_forward_seconds": plain_s, "capture_seconds": capture_s,
        "capture_ratio": capture_s / plain_s, "capture_to_scores_seconds": full_s,
        "capture_to_scores_ratio": full_s / plain_s,
        "superstimuli_layer": last, "superstimuli_seconds": round(stimuli_s, 2),
        "superstimuli_started_from": {k: stimuli.used.count(k) for k in ("post", "pre", "digit")},
        "share_beating_best_of_100_digits": float(beaten.float().mean()),
        "channels_silent_on_every_test_digit": [c + 1 for c in torch.nonzero(~fires).flatten().tolist()],
        "share_of_firing_channels_beating_best_of_100_digits": float(beaten[fires].float().mean()),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    train, test = load_data()
    nets = {name: audit(name, train, test, args.epochs, args.steps, args.seed) for name in NETS}
    conv_worst = max(n["conv_max_rel_error"] for n in nets.values())
    score_worst = max(max(n["score_max_rel_error"].values()) for n in nets.values())
    ratio_worst = max(n["capture_ratio"] for n in nets.values())
    full_worst = max(n["capture_to_scores_ratio"] for n in nets.values())
    beats_worst = min(n["share_beating_best_of_100_digits"] for n in nets.values())
    firing_worst = min(
        n["share_of_firing_channels_beating_best_of_100_digits"] for n in nets.values()
    )
    emit({
        "data": {"train": len(train[0]), "test": len(test[0])}, "epochs": args.epochs,
        "superstimuli_steps": args.steps, "seed": args.seed, "nets": nets,
        "worst": {"conv_max_rel_error": conv_worst, "score_max_rel_error": score_worst,
                  "capture_ratio": ratio_worst, "capture_to_scores_ratio": full_worst,
                  "share_beating_best_of_100_digits": beats_worst,
                  "share_of_firing_channels_beating_best_of_100_digits": firing_worst},
        "targets": {
            f"conv_decomposition_rel_error_le_{EXACT:g}": conv_worst <= EXACT,
            f"score_decomposition_rel_error_le_{EXACT:g}": score_worst <= EXACT,
            f"capture_ratio_le_{COST:g}": ratio_worst <= COST,
            f"capture_to_scores_ratio_le_{COST:g}": full_worst <= COST,
            f"superstimuli_share_ge_{BEATS:g}": beats_worst >= BEATS,
            f"superstimuli_share_of_firing_channels_ge_{BEATS:g}": firing_worst >= BEATS,
        },
    })  # fmt: skip


if __name__ == "__main__":
    main()
