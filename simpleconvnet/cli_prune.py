"""``simpleconvnet prune CKPT``: iterative outer-channel pruning with measured criteria."""

from __future__ import annotations

import argparse
import math

from dissect.infra import distributed as dist
from dissect.infra.errors import AuditError
from dissect.infra.runtime import check_device, non_negative_float, positive_int
from simpleconvnet.cli_common import (
    add_common_options,
    add_out_options,
    check_checkpoint,
    check_checkpoint_data,
    check_out,
    clear_run,
    seed_number,
    setup_runtime,
)
from simpleconvnet.criteria import CRITERIA
from simpleconvnet.model import SimpleConvNet
from simpleconvnet.prune import PruneConfig
from simpleconvnet.steps import PruneStep, prune_step

__all__ = ["register", "parse_weights", "parse_targets"]


def parse_weights(text: str) -> dict[str, float]:
    """``variation=1,structure=1,superstimulus=0.5,selectivity=1`` -> dict (missing: 0).

    Names must be known criteria, weights finite and 0 or more, and at least one above 0."""
    known = ", ".join(CRITERIA)
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            number = float(value) if sep else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise AuditError(
                f"--weights {text!r}: write name=number pairs with numbers of 0 or more, "
                "e.g. variation=1,selectivity=0.5"
            )
        if name.strip() not in CRITERIA:
            raise AuditError(f"--weights {text!r}: unknown criterion {name.strip()!r}; use {known}")
        weights[name.strip()] = number
    if not any(w > 0 for w in weights.values()):
        raise AuditError(f"--weights {text!r}: give at least one criterion a weight above 0 ({known})")  # fmt: skip
    return weights


def parse_targets(text: str, widths: tuple[int, ...], option: str = "--targets") -> tuple[int, ...]:
    """Target widths for the first ``len(targets)`` conv layers of a net of ``widths``: 1 to
    ``len(widths)`` whole numbers, each from 1 to the layer's width."""
    shown = ",".join(map(str, widths))
    allowed = (
        f"1 to {len(widths)} comma-separated widths, each from 1 to the layer's width ({shown})"
    )
    try:
        targets = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise AuditError(
            f"{option} {text!r} is not a list of whole numbers: give {allowed}"
        ) from None
    if not 1 <= len(targets) <= len(widths):
        raise AuditError(
            f"{option} {text!r} names {len(targets)} conv layers but the network has "
            f"{len(widths)} ({shown}): give {allowed}"
        )
    for k, (t, w) in enumerate(zip(targets, widths, strict=False), start=1):
        if not 1 <= t <= w:
            raise AuditError(
                f"{option} {text!r}: conv{k} has {w} channels, so its target must be from 1 to "
                f"{w}, not {t}: give {allowed}"
            )
    return targets


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``prune`` subcommand."""
    p = sub.add_parser(
        "prune",
        help="prune a trained SimpleConvNet iteratively",
        description="Score, cut and retrain over several iterations until the target widths; "
        "first test whether conv3 only copies conv2 and drop it when the accuracy allows.",
    )
    p.add_argument("ckpt", help="checkpoint folder of the trained, unpruned SimpleConvNet")
    p.add_argument("--iterations", type=positive_int, default=7, help="cuts")
    p.add_argument(
        "--targets",
        default="8,16,16",
        help="final widths of conv1,conv2[,conv3], each at most the checkpoint's width "
        "(default 8,16,16; conv3 may then be dropped)",
    )
    p.add_argument(
        "--budget",
        type=non_negative_float,
        default=0.5,
        help="validation accuracy points conv3's removal may cost (default 0.5)",
    )
    p.add_argument(
        "--weights", default="variation=1,structure=1,superstimulus=1,selectivity=1",
        help="weights of the four criteria (variation, structure, superstimulus, selectivity)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=positive_int, default=3,
        help="most retraining epochs per cut (default 3)",
    )  # fmt: skip
    p.add_argument(
        "--final-epochs", type=positive_int, default=40,
        help="most retraining epochs after the last cut and without conv3 (default 40)",
    )  # fmt: skip
    p.add_argument(
        "--tolerance", type=non_negative_float, default=PruneConfig().tolerance,
        help="a retraining stops once validation accuracy is back within this many points of "
        "its value before the cut (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--superstimulus-steps", type=positive_int, default=PruneConfig().superstimulus_steps,
        help="optimisation steps of each channel's plain superstimulus (a criterion)",
    )  # fmt: skip
    p.add_argument("--keep-conv3", action="store_true", help="do not test dropping conv3")
    p.add_argument("--random", action="store_true", help="baseline: choose channels at random")
    p.add_argument("--seed", type=seed_number, default=0, help="seed of retraining (and --random)")
    add_out_options(
        p, "runs/pruned", "iter_K/, final/ and the tables", "after the last finished iteration"
    )
    add_common_options(p)
    p.set_defaults(func=cmd_prune, check=check_prune)


def check_prune(args: argparse.Namespace) -> tuple[int, ...]:
    """Every option and the checkpoint, before any work; returns the target widths."""
    check_device(args.device)
    parse_weights(args.weights)
    check_out(
        args.out, resume=args.resume, force=args.force, resumable="state.json",
        nothing_to_resume=f"--resume: no finished pruning iteration in {str(args.out)!r}",
    )  # fmt: skip
    model, meta = check_checkpoint(args.ckpt)
    if type(model) is not SimpleConvNet:
        raise AuditError(
            f"{args.ckpt!r} holds a {type(model).__name__}, not a SimpleConvNet: prune a "
            "checkpoint of `simpleconvnet train`"
        )
    targets = parse_targets(args.targets, tuple(model.config.convs))
    check_checkpoint_data(meta)
    args.target_widths = targets
    return targets


def prune_step_of(args: argparse.Namespace) -> PruneStep:
    """The :class:`~simpleconvnet.steps.PruneStep` that ``simpleconvnet prune``'s options ask
    for (the target widths as :func:`check_prune` found them)."""
    targets = getattr(args, "target_widths", None) or check_prune(args)
    config = PruneConfig(
        iterations=args.iterations, targets=targets,
        budget=args.budget, weights=parse_weights(args.weights), epochs=args.epochs,
        final_epochs=args.final_epochs, tolerance=args.tolerance, seed=args.seed, drop_redundant=not args.keep_conv3,
        superstimulus_steps=args.superstimulus_steps,
    )  # fmt: skip
    return PruneStep(source=args.ckpt, pruning=config, random=args.random, resume=args.resume)


def cmd_prune(args: argparse.Namespace) -> int:
    step = prune_step_of(args)
    device = setup_runtime(args)
    if args.force:
        clear_run(args.out)
    outcome = prune_step(step, args.out, device, args.quiet)
    if dist.is_main():
        print(outcome.message)
    return 0
