"""``handnet`` command line: build HandNet by hand (only the head fitted) and fine-tune it.

The work of ``build`` and ``finetune`` is :mod:`handnet.steps`, which the pipeline calls too;
``build --from`` (compiling an explanation) is here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dissect.infra import distributed as dist
from dissect.infra.errors import AuditError
from dissect.infra.runtime import (
    CliParser,
    check_device,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
)
from handnet.finetune import FINETUNE_LR, FINETUNE_PATIENCE, MODES
from handnet.steps import (
    BuildStep,
    FinetuneStep,
    build_handnet,
    build_step,
    check_built,
    finetune_step,
)
from simpleconvnet import cli_common as common

__all__ = ["main", "build_parser", "build_handnet"]  # build_handnet: from handnet.steps


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="handnet", description="Build HandNet from analytic filters and written rules."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="build HandNet and fit its head (no gradient on the convs)",
                       description="Build HandNet; fit fc4/fc5 by logistic regression.")  # fmt: skip
    common.add_data_options(b)
    b.add_argument(
        "--widths", default="8,16",
        help="conv widths (default 8,16; at most 16,48, more than 16 rules over all 16 filters; a "
        "third width, at most the second, adds conv3)",
    )  # fmt: skip
    b.add_argument("--fc4", type=positive_int, default=128, help="width of fc4")
    b.add_argument(
        "--l2", type=non_negative_float, default=None,
        help="L2 penalty of the head fit (default: the one of 1e-3, 1e-4, 1e-2 that does best on "
        "the validation digits)",
    )  # fmt: skip
    b.add_argument(
        "--from", dest="source", default=None, metavar="CKPT",
        help="compile the explanation of this trained SimpleConvNet of two or three conv layers "
        "instead: each conv1 channel the filter its description names, conv2 (and conv3) rules "
        "from its contribution tables, the head refitted (its data set, widths and fc4 are the "
        "checkpoint's)",
    )  # fmt: skip
    b.add_argument(
        "--compile", default="conv1,conv2", choices=("conv1", "conv1,conv2", "conv1,conv2,conv3"),
        help="with --from: the layers compiled from words (the others kept as trained)",
    )  # fmt: skip
    common.add_out_options(
        b, "runs/handnet/built", "the checkpoint (model.json, model.safetensors)", None
    )
    common.add_common_options(b)
    b.set_defaults(func=cmd_build, check=check_build)
    f = sub.add_parser("finetune", help="fine-tune a built HandNet",
                       description="Fine-tune HandNet: constrained (meanings kept) or free.")  # fmt: skip
    f.add_argument("ckpt", help="HandNet checkpoint folder (from `handnet build`)")
    f.add_argument(
        "--mode", choices=MODES, required=True,
        help="constrained: only the interpretable parameters; free: every weight (required)",
    )  # fmt: skip
    f.add_argument(
        "--epochs", type=positive_int, default=40, help="most epochs (default %(default)s)"
    )
    f.add_argument(
        "--patience", type=positive_int, default=FINETUNE_PATIENCE,
        help="stop once validation accuracy has not improved for this many epochs; best/ "
        "keeps the best epoch (default: off, the whole schedule runs)",
    )  # fmt: skip
    f.add_argument("--batch-size", type=positive_int, default=64, help="global batch")
    f.add_argument("--lr", type=positive_float, default=FINETUNE_LR, help="peak learning rate")
    f.add_argument("--no-augment", action="store_true", help="train without random affine")
    f.add_argument(
        "--seed", type=common.seed_number, default=0, help="seed for order and augmentation"
    )
    f.add_argument(
        "--data-dir", default=None, help="override the checkpoint's data folder (default: its own)"
    )
    common.add_out_options(
        f, None, "last/, best/ and drift.csv (default runs/handnet/MODE)", "from OUT/last"
    )
    f.add_argument("--snapshot-every", type=non_negative_int, default=200,
                   help="keep the first-layer filters every N steps (0: never)")  # fmt: skip
    common.add_common_options(f)
    f.set_defaults(func=cmd_finetune, check=check_finetune)
    return parser


def _handnet_widths(text: str, fc4: int) -> tuple[int, ...]:
    from handnet.model import default_config

    widths = common.parse_widths(text)
    try:
        default_config(widths, fc4)
    except ValueError as exc:
        raise AuditError(f"--widths {text!r}: {exc}") from None
    return widths


def check_build(args: argparse.Namespace) -> None:
    from dissect.infra.datasets import CLASS_NAMES
    from simpleconvnet.model import SimpleConvNet

    if args.source is not None:
        check_device(args.device)
        common.check_out(args.out, force=args.force)
        model, meta = common.check_checkpoint(args.source, "--from")
        names = list(getattr(model, "conv_names", []))
        if not isinstance(model, SimpleConvNet) or names not in (
            ["conv1", "conv2"],
            ["conv1", "conv2", "conv3"],
        ):
            layers = ", ".join(names) or type(model).__name__
            raise AuditError(
                f"--from {args.source!r}: only a SimpleConvNet with two or three conv layers "
                f"compiles (this one has {layers}); prune it first (simpleconvnet prune)"
            )
        if args.compile.split(",")[-1] not in names:
            raise AuditError(
                f"--compile {args.compile}: {args.source!r} has only {', '.join(names)}; "
                f"give --compile conv1 or conv1,conv2"
            )
        common.check_checkpoint_data(meta, args.data_dir)
        return
    classes = len(CLASS_NAMES[args.dataset])
    if args.fc4 < classes:
        raise AuditError(
            f"--fc4 {args.fc4}: the closed-form head needs fc4 at least as wide as the "
            f"{classes} classes: give --fc4 {classes} or more"
        )
    _handnet_widths(args.widths, args.fc4)
    check_device(args.device)
    common.check_out(args.out, force=args.force)
    common.check_data_options(args)


def check_finetune(args: argparse.Namespace) -> None:
    check_device(args.device)
    args.out = args.out or f"runs/handnet/{args.mode}"
    common.check_out(
        args.out, resume=args.resume, force=args.force, resumable="last/model.json",
        nothing_to_resume=f"--resume: no finished epoch to resume from in {str(args.out)!r}",
    )  # fmt: skip
    model, meta = common.check_checkpoint(args.ckpt)
    check_built(model, args.ckpt)
    common.check_checkpoint_data(meta, args.data_dir)


def cmd_compile(args: argparse.Namespace) -> int:
    """``handnet build --from CKPT``: the network the checkpoint's explanation describes."""
    from dissect.infra.checkpoints import CheckpointMeta, load_checkpoint_data, save_model
    from handnet.compile import compile_explanation
    from simpleconvnet.checkpoint import load_model
    from simpleconvnet.model import SimpleConvNet
    from simpleconvnet.train import evaluate

    device = common.setup_runtime(args)
    original, meta = load_model(args.source, SimpleConvNet, map_location=device)
    train = load_checkpoint_data(meta, "train", args.data_dir)
    test = load_checkpoint_data(meta, "test", args.data_dir)
    layers = tuple(args.compile.split(","))
    model = compile_explanation(original, *train, layers=layers, dataset=meta.data.get("name"))
    result, before = evaluate(model, *test), evaluate(original, *test)
    out_meta = CheckpointMeta(
        kind="HandNet", mode="compiled", data=meta.data, parent=str(Path(args.source).resolve()),
        world_size=dist.world_size(), metrics={"accuracy": result.accuracy, **result.metrics()},
        extra={"compiled_layers": list(layers), "original_metrics": before.metrics()},
    )  # fmt: skip
    if args.force:
        common.clear_run(args.out)
    if dist.is_main():
        save_model(args.out, model, out_meta)
        print(f"{', '.join(layers)} compiled from the explanation of {args.source}: test accuracy "
              f"{result.accuracy:.2%} (the original's {before.accuracy:.2%}); checkpoint in {args.out}/")  # fmt: skip
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    if args.source is not None:
        return cmd_compile(args)
    device = common.setup_runtime(args)
    config = BuildStep(dataset=args.dataset, widths=_handnet_widths(args.widths, args.fc4),
                       fc4=args.fc4, l2=args.l2, data_dir=args.data_dir,
                       download=args.download)  # fmt: skip
    if args.force:
        common.clear_run(args.out)
    outcome = build_step(config, args.out, device, args.quiet)
    if dist.is_main():
        print(outcome.message)
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from simpleconvnet.train import TrainConfig

    device = common.setup_runtime(args)
    training = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           augment=not args.no_augment, seed=args.seed,
                           snapshot_every=args.snapshot_every,
                           patience=args.patience)  # fmt: skip
    out = Path(args.out or f"runs/handnet/{args.mode}")
    if args.force:
        common.clear_run(out)
    config = FinetuneStep(args.ckpt, args.mode, training, args.data_dir, args.resume)
    outcome = finetune_step(config, out, device, args.quiet)
    if dist.is_main():
        print(outcome.message)
    return 0


def _main(argv: list[str] | None) -> int:
    from simpleconvnet.launch import dispatch

    return dispatch("handnet", build_parser, argv)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
