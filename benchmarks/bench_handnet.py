"""HandNet benchmarks (issue 6) on mnist-5k.

- hand-built accuracy (conv layers analytic, only the head fitted by logistic regression);
- constrained and free fine-tuning per seed, against a SimpleConvNet of the same widths
  trained with the same epochs and seed (or a given pruned checkpoint, ``--reference``);
- trainable parameter counts;
- agreement of dissect's automatic first-layer descriptions with the constructed ones, before
  and after constrained fine-tuning; drift of the freed filters (Gabor R^2, descriptions).

    python -m benchmarks.bench_handnet [--seeds 0,1,2] [--epochs 40] [--quick] [--widths 8,16]
        [--modes constrained,free] [--reference runs/bench-prune/seed{seed}/final]

``--widths 8,16,16`` builds HandNet with a conv3 of carry rules (for a pruned net that kept conv3).

``--anchor`` measures instead the hand-built nets against a fixed scattering front end (Kymatio
``Scattering2D``, J=2, L=8: 81 x 7 x 7 = 3,969 features; the ``bench`` extra) on the same
training digits (the training split less the validation digits) and the same readout
(:func:`handnet.head.fit_logistic`, its L2 penalty chosen on the validation digits for each
front end), with McNemar's exact test on the test digits between each hand-built net and the
anchor, and the agreement of dissect's descriptions with the written ones:

    python -m benchmarks.bench_handnet --anchor [--widths 8,16 --widths 8,16,16] [--head-seeds 0,1,2]

``--head-seeds`` fits every readout on the augmented copies of each seed (the build's draw is
seed 0) and reports each seed's figures and their mean, since the draw alone moves a readout's
test accuracy by several tenths of a point; the anchor comparison is made on the means.
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import sys
from collections.abc import Callable

import torch

from benchmarks.common import emit, mean_spread
from dissect.infra.datasets import load_split, split_validation
from handnet.finetune import MODES, filter_drift, finetune, trainable_parameters
from handnet.head import (
    HEAD_L2,
    augmented_copies,
    fit_logistic,
    frozen_convs,
    frozen_features,
    head_copies,
)
from handnet.model import HandNet, default_config
from handnet.steps import build_handnet
from simpleconvnet.cli import parse_widths
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.train import TrainConfig, evaluate, fit


def description_agreement(model: HandNet) -> dict[str, dict]:
    """Per conv layer: the share of channels whose dissect label (or its secondary) opens the
    constructed one (:mod:`handnet.readable`; the model is described once)."""
    from handnet.readable import agrees, written_and_read

    table = written_and_read(model)
    out = {}
    for layer in model.conv_names:
        t = table[table["layer"] == layer]
        first = layer == model.conv_names[0]
        either = [a or agrees(s, w, first) for a, s, w in zip(t["agrees"], t["secondary"],
                                                               t["written"], strict=True)]  # fmt: skip
        n = len(t)
        out[layer] = {"primary": int(t["agrees"].sum()) / n,
                      "primary_or_secondary": sum(either) / n,
                      "agreeing": int(t["agrees"].sum()), "channels": n,
                      "described": sum(bool(w.strip()) for w in t["written"]) / n,
                      "constructed": list(t["written"]), "dissect": list(t["read"]),
                      "dissect_secondary": list(t["secondary"])}  # fmt: skip
    return out


def mcnemar_exact(first_right: torch.Tensor, second_right: torch.Tensor) -> dict:
    """McNemar's exact test on paired outcomes (``[N]`` bool each): the two-sided binomial
    p-value of the discordant pairs (``only_first``: right only by the first, ``only_second``)
    under a fair coin."""
    b = int((first_right & ~second_right).sum())
    c = int((~first_right & second_right).sum())
    n, k = b + c, min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return {"only_first": b, "only_second": c, "p_value": min(1.0, 2 * tail)}


def scattering_features() -> Callable[[torch.Tensor], torch.Tensor]:
    """``images [N, 1, 28, 28] -> [N, 3969]``: Kymatio's Scattering2D (J=2, L=8) flattened."""
    import scipy.special

    if not hasattr(scipy.special, "sph_harm"):
        # kymatio 0.3 imports this (for 3-D scattering only) at package import; SciPy >= 1.15
        # names it sph_harm_y, with the degree first and the two angles swapped
        def sph_harm(m: object, n: object, theta: object, phi: object) -> object:
            return scipy.special.sph_harm_y(n, m, phi, theta)

        scipy.special.sph_harm = sph_harm
    from kymatio.torch import Scattering2D

    scattering = Scattering2D(J=2, shape=(28, 28), L=8)

    def features(images: torch.Tensor) -> torch.Tensor:
        parts = [scattering(images[i : i + 500, 0].contiguous()).flatten(1)
                 for i in range(0, len(images), 500)]  # fmt: skip
        return torch.cat(parts)

    return features


def readout(
    features: Callable[[torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int = 0,
) -> dict:
    """Fit :func:`handnet.head.fit_logistic` on ``features`` of the training digits and their
    augmented copies (:func:`handnet.head.augmented_copies`, as HandNet's build fits its head)
    for every L2 of :data:`handnet.head.HEAD_L2`, keep the one best on the validation digits
    (the earlier on a tie, as the build does) and report its accuracies and its per-digit test
    outcomes (``right``, ``[N]`` bool). ``val`` and ``test`` are ``(features, labels)``, their
    features computed once for every draw; ``seed`` draws the augmented copies (the build's
    is 0)."""
    x, y = augmented_copies(*train, head_copies(len(train[1])), "mnist-5k", seed)
    with torch.no_grad():
        f_train = features(x)
    f_val, f_test = val[0], test[0]
    by_l2 = {}
    for l2 in HEAD_L2:
        fit = fit_logistic(f_train, y, 10, l2)
        with torch.no_grad():
            right = {name: ((f.double() @ fit.weight.double().T + fit.bias.double()).argmax(1)
                            == y) for name, f, y in (("val", f_val, val[1]),
                                                     ("test", f_test, test[1]))}  # fmt: skip
        by_l2[l2] = {"train": fit.train_accuracy, "val": float(right["val"].double().mean()),
                     "test": float(right["test"].double().mean()), "right": right["test"]}  # fmt: skip
        print(f"  l2 {l2:g}: val {by_l2[l2]['val']:.4f} test {by_l2[l2]['test']:.4f}",
              file=sys.stderr, flush=True)  # fmt: skip
    best = max(HEAD_L2, key=lambda v: (by_l2[v]["val"], -HEAD_L2.index(v)))
    return {"features": int(f_train.shape[1]), "l2": best, "train_accuracy": by_l2[best]["train"],
            "val_accuracy": by_l2[best]["val"], "test_accuracy": by_l2[best]["test"],
            "right": by_l2[best]["right"],
            "val_accuracy_by_l2": {str(k): v["val"] for k, v in by_l2.items()}}  # fmt: skip


def readouts(
    features: Callable[[torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    head_seeds: list[int],
) -> dict[int, dict]:
    """:func:`readout` for every seed of ``head_seeds``, by seed; ``val`` and ``test`` are
    ``(images, labels)``, their features computed once for all the seeds."""
    with torch.no_grad():
        val_f, test_f = ((features(images), labels) for images, labels in (val, test))
    runs = {}
    for seed in head_seeds:
        print(f" head seed {seed}", file=sys.stderr, flush=True)
        runs[seed] = readout(features, train, val_f, test_f, seed)
    return runs


def anchor_main(widths_list: list[tuple[int, ...]], head_seeds: list[int]) -> None:
    """The hand-built nets of ``widths_list`` against the scattering anchor, as one JSON; each
    readout is fitted on the augmented copies of every seed of ``head_seeds`` (the draw moves
    the test accuracy by several tenths), the figures of the first seed reported in full, the
    per-seed ones and their mean beside them."""
    full, test = load_split("mnist-5k", "train"), load_split("mnist-5k", "test")
    train, val = split_validation(*full, "mnist-5k")

    def measured(features: Callable[[torch.Tensor], torch.Tensor]) -> tuple[dict, dict]:
        runs = readouts(features, train, val, test, head_seeds)
        figures = {k: v for k, v in runs[head_seeds[0]].items() if k != "right"}
        figures["head_seed"] = head_seeds[0]
        figures["by_head_seed"] = {
            str(seed): {k: run[k] for k in ("l2", "val_accuracy", "test_accuracy")}
            for seed, run in runs.items()
        }
        figures["mean_test_accuracy"] = sum(r["test_accuracy"] for r in runs.values()) / len(runs)
        return figures, runs

    print("scattering (J=2, L=8)", file=sys.stderr, flush=True)
    anchor, anchor_runs = measured(scattering_features())
    figures: dict = {
        "dataset": "mnist-5k", "fit_digits": len(train[1]), "validation_digits": len(val[1]),
        "test_digits": len(test[1]), "readout": "handnet.head.fit_logistic (multinomial "
        f"logistic regression, L-BFGS) on the fit digits and {head_copies(len(train[1])) - 1} "
        f"augmented copies, L2 chosen on the validation digits from {list(HEAD_L2)}",
        "head_seeds": head_seeds, "scattering": anchor, "hand_built": {},
    }  # fmt: skip
    for widths in widths_list:
        name = ",".join(map(str, widths))
        print(f"HandNet {name}", file=sys.stderr, flush=True)
        model = HandNet(default_config(widths)).eval()
        with frozen_convs(model):
            hand, hand_runs = measured(functools.partial(frozen_features, model))
        tests = {str(seed): mcnemar_exact(hand_runs[seed]["right"], anchor_runs[seed]["right"])
                 for seed in head_seeds}  # fmt: skip
        figures["hand_built"][name] = {
            **hand,
            "mcnemar_vs_scattering": tests[str(head_seeds[0])],
            "mcnemar_vs_scattering_by_head_seed": tests,
            "at_least_scattering": hand["mean_test_accuracy"] >= anchor["mean_test_accuracy"],
            "agreement": description_agreement(model),
        }
    emit(figures)


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
    p.add_argument(
        "--widths",
        action="append",
        default=None,
        help="HandNet conv widths (default 8,16); repeat for several nets with --anchor",
    )
    p.add_argument(
        "--anchor",
        action="store_true",
        help="hand-built nets against the scattering anchor (no fine-tuning)",
    )
    p.add_argument(
        "--head-seeds", default="0",
        help="with --anchor: the draws of the readout's augmented copies, e.g. 0,1,2 (the build "
        "uses 0)",
    )  # fmt: skip
    p.add_argument(
        "--modes", default="constrained,free",
        help="the fine-tuning modes to run, e.g. constrained (default both)",
    )  # fmt: skip
    p.add_argument(
        "--reference", default=None,
        help="pruned SimpleConvNet checkpoint to beat; {seed} is replaced by the seed, e.g. "
        "runs/bench-prune/seed{seed}/final (written by bench_prune)",
    )  # fmt: skip
    args = p.parse_args()
    asked = args.modes.split(",")
    if any(m not in MODES for m in asked):
        print(f"bench_handnet: error: --modes takes {' or '.join(MODES)} or both, comma-separated "
              f"(got {args.modes!r})", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    modes = [m for m in MODES if m in asked]
    if args.anchor:  # all threads: convex fits, which the thread count moves only by rounding
        anchor_main([parse_widths(w) for w in args.widths or ["8,16"]],
                    [int(s) for s in args.head_seeds.split(",")])  # fmt: skip
        return
    torch.set_num_threads(1)
    args.widths = (args.widths or ["8,16"])[-1]
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    epochs = 2 if args.quick else args.epochs
    full, test = load_split("mnist-5k", "train"), load_split("mnist-5k", "test")
    train, val = split_validation(*full, "mnist-5k")
    widths = parse_widths(args.widths)
    built, head, _ = build_handnet(widths, 128, train, val=val, dataset="mnist-5k")
    hand = evaluate(built, *test).accuracy
    figures: dict = {"dataset": "mnist-5k", "epochs": epochs, "seeds": seeds, "widths": widths,
                     "hand_built": {"test_accuracy": hand, "train_accuracy": head.train_accuracy,
                                    "note": "convex head fit: identical for every seed"},
                     "agreement_hand_built": description_agreement(built)}  # fmt: skip
    runs: dict[str, list] = {**{m: [] for m in modes}, "reference": []}
    counts: dict[str, int] = {}
    for seed in seeds:
        config = TrainConfig(epochs=epochs, seed=seed, snapshot_every=0)
        for mode in modes:
            result = finetune(copy.deepcopy(built), train, test, mode, config, val=val, quiet=True)
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
                    figures["agreement_constrained"] = description_agreement(result.model)
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
