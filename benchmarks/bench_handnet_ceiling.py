"""Where HandNet's accuracy is lost (issue 19): the written conv2 rules against a conv2 *trained*
on the same fixed, hand-built conv1, under the same readout.

HandNet's conv1 (the written Gabor bank at ``--widths``) is copied into a SimpleConvNet of the
same widths and frozen; its conv2 and head are trained by the suite's default recipe
(:func:`simpleconvnet.train.fit`, every choice on the validation digits); then the head is
refitted on the frozen features exactly as the hand-built readout is
(:func:`benchmarks.bench_handnet.readout`: the build's augmented copies, the L2 penalty chosen on
the validation digits), so that only the conv2 differs. The trained conv2 comes in kinds that
say what a rule needs:

- ``free``: any 5x5 kernel over every conv1 channel (a ceiling for conv2 over this conv1);
- ``excitatory``: weights held non-negative (|w|): no inhibition;
- ``single``: each conv2 channel reads one conv1 channel (``groups`` = conv1's width), with a
  signed 5x5 kernel: the second-order form of a scattering transform;
- ``pointwise``: 1x1 kernels: channels mixed at one place only.

A diagnostic, not a HandNet: its conv2 is learned by gradient, which HandNet's never is.

    python -m benchmarks.bench_handnet_ceiling [--widths 16,48] [--kinds free,excitatory,single,pointwise]
        [--seed 0] [--head-seeds 0,1,2]

Prints JSON: for the written rules and for each kind, the readout's validation and test
accuracy per head draw and their means; the test accuracies are reported, never chosen by.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn

from benchmarks.bench_handnet import readouts
from benchmarks.common import emit, mean_spread
from dissect.infra.datasets import load_split, split_validation
from dissect.infra.errors import AuditError
from handnet.head import frozen_convs, frozen_features
from handnet.model import HandNet, default_config
from simpleconvnet.cli import parse_widths
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.train import TrainConfig, fit

KINDS = ("free", "excitatory", "single", "pointwise")


class _Magnitude(nn.Module):
    """A weight parametrised by its magnitude: never negative."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.abs()


def trained_conv2(hand: HandNet, kind: str, train, val, test, seed: int) -> SimpleConvNet:
    """A SimpleConvNet with ``hand``'s conv1 (frozen) and a conv2 of ``kind`` trained with the
    default recipe."""
    n1, n2 = hand.config.convs[:2]
    model = SimpleConvNet(SimpleConvNetConfig(convs=(n1, n2), fc4=hand.config.fc4))
    if kind in ("single", "pointwise"):
        k = 1 if kind == "pointwise" else 5
        model.conv2 = nn.Conv2d(n1, n2, k, padding=k // 2, groups=n1 if kind == "single" else 1)
    init_weights(model, torch.Generator().manual_seed(seed))
    if kind == "excitatory":
        parametrize.register_parametrization(model.get_submodule("conv2"), "weight", _Magnitude())
    conv1, written = model.get_submodule("conv1"), hand.get_submodule("conv1")
    with torch.no_grad():
        for name in ("weight", "bias"):
            getattr(conv1, name).copy_(getattr(written, name))
    conv1.requires_grad_(False)
    fit(model, train, test, TrainConfig(seed=seed, snapshot_every=0), val=val, quiet=True,
        dataset="mnist-5k")  # fmt: skip
    return model.eval()


def measured(features: Callable[[torch.Tensor], torch.Tensor], train, val, test,
             head_seeds: list[int]) -> dict:  # fmt: skip
    runs = readouts(features, train, val, test, head_seeds)
    return {
        "by_head_seed": {str(s): {k: r[k] for k in ("l2", "val_accuracy", "test_accuracy")}
                         for s, r in runs.items()},
        "val_accuracy": mean_spread([r["val_accuracy"] for r in runs.values()]),
        "test_accuracy": mean_spread([r["test_accuracy"] for r in runs.values()]),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--widths", default="16,48")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--seed", type=int, default=0, help="the trained conv2's seed")
    p.add_argument("--head-seeds", default="0,1,2")
    args = p.parse_args()
    kinds = args.kinds.split(",")
    try:  # every argument checked before any data is read
        if any(k not in KINDS for k in kinds):
            raise ValueError(
                f"--kinds takes {', '.join(KINDS)}, comma-separated (got {args.kinds!r})"
            )
        widths = parse_widths(args.widths)
        if len(widths) != 2:
            raise ValueError(
                f"--widths takes two widths, conv1's and conv2's (got {args.widths!r})"
            )
        hand = HandNet(default_config(widths)).eval()
        if not all(s.strip().isdigit() for s in args.head_seeds.split(",")):
            raise ValueError(f"--head-seeds takes comma-separated seeds (got {args.head_seeds!r})")
        head_seeds = [int(s) for s in args.head_seeds.split(",")]
    except (AuditError, ValueError) as e:
        print(f"bench_handnet_ceiling: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    full, test = load_split("mnist-5k", "train"), load_split("mnist-5k", "test")
    train, val = split_validation(*full, "mnist-5k")
    print("written rules", file=sys.stderr, flush=True)
    with frozen_convs(hand):
        figures: dict = {
            "dataset": "mnist-5k", "widths": widths, "conv2_seed": args.seed,
            "head_seeds": head_seeds,
            "written": measured(partial(frozen_features, hand), train, val, test, head_seeds),
        }  # fmt: skip
    for kind in kinds:
        print(f"trained conv2: {kind}", file=sys.stderr, flush=True)
        model = trained_conv2(hand, kind, train, val, test, args.seed)
        with torch.no_grad():
            figures[kind] = measured(partial(frozen_features, model), train, val, test, head_seeds)
    emit(figures)


if __name__ == "__main__":
    main()
