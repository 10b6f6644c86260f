"""HandNet benchmarks (issue 6) on mnist-5k.

- hand-built accuracy (conv layers analytic, only the head fitted by logistic regression);
- constrained and free fine-tuning per seed, against a SimpleConvNet of the same widths
  trained with the same epochs and seed (or a given pruned checkpoint, ``--reference``);
- trainable parameter counts;
- agreement of dissect's automatic first-layer descriptions with the constructed ones, before
  and after constrained fine-tuning; drift of the freed filters (Gabor R^2, descriptions).

    python -m benchmarks.bench_handnet [--seeds 0,1,2] [--epochs 40] [--quick] [--widths 8,16]
        [--reference runs/bench-prune/seed{seed}/final]

``--widths 8,16,16`` builds HandNet with a conv3 of carry rules (for a pruned net that kept conv3).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys

import torch

from benchmarks.common import emit, mean_spread
from dissect.infra.datasets import load_split
from handnet.finetune import filter_drift, finetune, trainable_parameters
from handnet.model import HandNet
from handnet.steps import build_handnet
from simpleconvnet.cli import parse_widths
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.train import TrainConfig, evaluate, fit


def _norm(text: str) -> str:
    return re.sub(r"\s*\(.*\)$", "", text).strip()


def snap_to_probes(text: str) -> str:
    """Name a fine-tuned orientation at the probes' resolution (0/45/90/135 degrees), so that
    "line at 6 degrees" is compared with dissect's "horizontal line"."""
    from handnet.filters import describe_line

    def snap(m: re.Match) -> str:
        return describe_line(45.0 * round(int(m.group(1)) / 45.0))

    return re.sub(r"line at (\d+) degrees", snap, text)


def _agrees(label: str, ours: str) -> bool:
    label = _norm(label)
    return bool(label) and (ours == label or ours.startswith(label + ",") or
                            ours.startswith(label + " ("))  # fmt: skip


def description_agreement(model: HandNet, layer: str) -> dict:
    """Share of channels whose dissect label (or its secondary) opens the constructed one."""
    from dissect.labels import describe_layer

    labels = describe_layer(model, layer)
    ours = [snap_to_probes(_norm(d)) if layer == "conv1" else d
            for d in getattr(model, layer).descriptions]  # fmt: skip
    primary = [_agrees(d, o) for d, o in zip(labels["description"], ours, strict=True)]
    either = [p or _agrees(s, o) for p, s, o in zip(primary, labels["secondary"], ours,
                                                    strict=True)]  # fmt: skip
    return {"primary": sum(primary) / len(ours), "primary_or_secondary": sum(either) / len(ours),
            "constructed": ours, "dissect": list(labels["description"]),
            "dissect_secondary": list(labels["secondary"])}  # fmt: skip


def reference_net(train, test, config: TrainConfig, widths: tuple[int, ...]) -> tuple[float, int]:
    model = SimpleConvNet(SimpleConvNetConfig(convs=widths, fc4=128))
    init_weights(model, torch.Generator().manual_seed(config.seed))
    result = fit(model, train, test, config, quiet=True)
    return result.final.accuracy, trainable_parameters(model)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--quick", action="store_true", help="one seed, two epochs")
    p.add_argument("--widths", default="8,16", help="HandNet conv widths (default 8,16)")
    p.add_argument(
        "--reference", default=None,
        help="pruned SimpleConvNet checkpoint to beat; {seed} is replaced by the seed, e.g. "
        "runs/bench-prune/seed{seed}/final (written by bench_prune)",
    )  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(1)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    epochs = 2 if args.quick else args.epochs
    train, test = load_split("mnist-5k", "train"), load_split("mnist-5k", "test")
    widths = parse_widths(args.widths)
    built, head = build_handnet(widths, 128, train)
    hand = evaluate(built, *test).accuracy
    figures: dict = {"dataset": "mnist-5k", "epochs": epochs, "seeds": seeds, "widths": widths,
                     "hand_built": {"test_accuracy": hand, "train_accuracy": head.train_accuracy,
                                    "note": "convex head fit: identical for every seed"},
                     "agreement_hand_built": {n: description_agreement(built, n)
                                              for n in built.conv_names}}  # fmt: skip
    runs: dict[str, list] = {"constrained": [], "free": [], "reference": []}
    counts: dict[str, int] = {}
    for seed in seeds:
        config = TrainConfig(epochs=epochs, seed=seed, snapshot_every=0)
        for mode in ("constrained", "free"):
            result = finetune(copy.deepcopy(built), train, test, mode, config, quiet=True)
            runs[mode].append(result.train.final.accuracy)
            counts[mode] = result.trainable
            if seed == seeds[0]:
                drift = filter_drift(built, result.model)
                c1 = drift[drift["layer"] == "conv1"]
                figures[f"drift_{mode}"] = {
                    "conv1_gabor_r2": c1["gabor_r2"].tolist(),
                    "conv1_relative_change": c1["relative_change"].tolist(),
                    "descriptions_before": c1["description_before"].tolist(),
                    "descriptions_after": c1["description_after"].tolist(),
                }
                if mode == "constrained":
                    figures["agreement_constrained"] = {
                        n: description_agreement(result.model, n) for n in built.conv_names
                    }
                    figures["descriptions_constrained"] = result.model.descriptions()
        if args.reference:
            from dissect.infra.checkpoints import load_checkpoint

            ref, _ = load_checkpoint(args.reference.format(seed=seed))
            acc, counts["reference"] = evaluate(ref, *test).accuracy, trainable_parameters(ref)
        else:
            acc, counts["reference"] = reference_net(train, test, config, widths)
        runs["reference"].append(acc)
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in runs.items()),
              file=sys.stderr, flush=True)  # fmt: skip
    figures["reference_model"] = (
        args.reference or f"SimpleConvNet {args.widths} trained from scratch, same epochs/seed"
    )
    for mode, accs in runs.items():
        figures[mode] = {"test_accuracy": accs, "summary": mean_spread(accs)}
    figures["trainable_parameters"] = {**counts, "hand_built_head_only": trainable_parameters(
        built.fc4) + trainable_parameters(built.fc5)}  # fmt: skip
    conv = {n: sum(p.numel() for p in getattr(built, n).parameters()) for n in built.conv_names}
    figures["trainable_parameters"]["handnet_conv_layers"] = conv
    emit(figures)


if __name__ == "__main__":
    main()
