"""``simpleconvnet prune CKPT``: iterative outer-channel pruning with measured criteria."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "parse_weights"]


def parse_weights(text: str) -> dict[str, float]:
    """``variation=1,structure=1,superstimulus=0.5,selectivity=1`` -> dict (missing: 0)."""
    from dissect.errors import AuditError

    weights: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise AuditError(
                f"--weights {text!r}: write name=number pairs, e.g. variation=1,selectivity=0.5"
            ) from None
    return weights


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``prune`` subcommand."""
    from simpleconvnet.cli import add_common_options, positive_int

    p = sub.add_parser(
        "prune",
        help="prune a trained SimpleConvNet iteratively",
        description="Score, cut and retrain over several iterations until the target widths; "
        "first test whether conv3 only copies conv2 and drop it when the accuracy allows.",
    )
    p.add_argument("ckpt", help="checkpoint folder of the trained, unpruned SimpleConvNet")
    p.add_argument("--iterations", type=positive_int, default=7, help="cuts (default 7)")
    p.add_argument(
        "--targets",
        default="8,16,16",
        help="final widths of conv1,conv2[,conv3] (default 8,16,16; conv3 may then be dropped)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=0.5,
        help="accuracy points conv3's removal may cost (default 0.5)",
    )
    p.add_argument(
        "--weights", default="variation=1,structure=1,superstimulus=1,selectivity=1",
        help="weights of the four criteria (variation, structure, superstimulus, selectivity)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=positive_int, default=3, help="retraining epochs per cut (default 3)"
    )
    p.add_argument(
        "--final-epochs",
        type=positive_int,
        default=40,
        help="retraining after the last cut (default 40)",
    )
    p.add_argument("--keep-conv3", action="store_true", help="do not test dropping conv3")
    p.add_argument("--random", action="store_true", help="baseline: choose channels at random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/pruned", help="output folder")
    p.add_argument(
        "--resume", action="store_true", help="continue after the last finished iteration"
    )
    add_common_options(p)
    p.set_defaults(func=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    from dissect import distributed as dist
    from dissect.checkpoints import load_checkpoint, load_checkpoint_data
    from simpleconvnet.cli import parse_widths, setup_runtime
    from simpleconvnet.prune import PruneConfig, choose_at_random, choose_by_score, prune

    config = PruneConfig(
        iterations=args.iterations, targets=parse_widths(args.targets) if "," in args.targets else (int(args.targets),),
        budget=args.budget, weights=parse_weights(args.weights), epochs=args.epochs,
        final_epochs=args.final_epochs, seed=args.seed, drop_redundant=not args.keep_conv3,
    )  # fmt: skip
    device = setup_runtime(args)
    model, meta = load_checkpoint(args.ckpt, map_location=device)
    train = load_checkpoint_data(meta, "train")
    test = load_checkpoint_data(meta, "test")
    chooser = choose_at_random(args.seed) if args.random else choose_by_score
    result = prune(
        model, train, test, config, out_dir=args.out, metadata={k: meta[k] for k in ("kind", "data") if k in meta},
        chooser=chooser, resume=args.resume, quiet=args.quiet,
    )  # fmt: skip
    if dist.is_main():
        h = result.history
        print(result.redundancy.get("reason", ""))
        print(
            f"pruned to {h['widths'].iloc[-1]}: accuracy {h['accuracy_before_cut'].iloc[0]:.2%} -> "
            f"{h['accuracy_after_retraining'].iloc[-1]:.2%}, conv parameters "
            f"{h['conv_parameters'].iloc[0]:,} -> {h['conv_parameters'].iloc[-1]:,}; in {Path(args.out)}/"
        )
    return 0
