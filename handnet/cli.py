"""``handnet`` command line: build HandNet by hand (only the head fitted) and fine-tune it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dissect.infra import distributed as dist
from dissect.infra.errors import AuditError
from dissect.infra.runtime import (
    CliParser,
    check_device,
    non_negative_float,
    positive_float,
    run_cli,
)
from handnet.finetune import MODES
from simpleconvnet.cli import (
    add_common_options,
    add_data_options,
    add_out_options,
    check_checkpoint,
    check_checkpoint_data,
    check_data_options,
    check_out,
    clear_run,
    non_negative_int,
    parse_widths,
    positive_int,
    seed_number,
    setup_runtime,
)

__all__ = ["main", "build_parser", "build_handnet"]


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="handnet", description="Build HandNet from analytic filters and written rules."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="build HandNet and fit its head (no gradient on the convs)",
                       description="Build HandNet; fit fc4/fc5 by logistic regression.")  # fmt: skip
    add_data_options(b)
    b.add_argument(
        "--widths", default="8,16",
        help="conv widths (default 8,16; at most 8,16; a third width, at most the second, adds conv3)",
    )  # fmt: skip
    b.add_argument("--fc4", type=positive_int, default=128, help="width of fc4")
    b.add_argument("--l2", type=non_negative_float, default=1e-4, help="L2 penalty of the head fit")
    b.add_argument(
        "--from", dest="source", default=None, metavar="CKPT",
        help="compile the explanation of this trained two-conv-layer SimpleConvNet instead: each "
        "conv1 channel the filter its description names, conv2 rules from its contribution "
        "tables, the head refitted (its data set, widths and fc4 are the checkpoint's)",
    )  # fmt: skip
    b.add_argument(
        "--compile", default="conv1,conv2", choices=("conv1", "conv1,conv2"),
        help="with --from: the layers compiled from words (the others kept as trained)",
    )  # fmt: skip
    add_out_options(b, "runs/handnet/built", "the checkpoint (model.json, model.safetensors)", None)
    add_common_options(b)
    b.set_defaults(func=cmd_build, check=check_build)
    f = sub.add_parser("finetune", help="fine-tune a built HandNet",
                       description="Fine-tune HandNet: constrained (meanings kept) or free.")  # fmt: skip
    f.add_argument("ckpt", help="HandNet checkpoint folder (from `handnet build`)")
    f.add_argument(
        "--mode", choices=MODES, required=True,
        help="constrained: only the interpretable parameters; free: every weight (required)",
    )  # fmt: skip
    f.add_argument("--epochs", type=positive_int, default=40, help="epochs")
    f.add_argument("--batch-size", type=positive_int, default=64, help="global batch")
    f.add_argument("--lr", type=positive_float, default=3e-3, help="peak learning rate")
    f.add_argument("--no-augment", action="store_true", help="train without random affine")
    f.add_argument("--seed", type=seed_number, default=0, help="seed for order and augmentation")
    f.add_argument(
        "--data-dir", default=None, help="override the checkpoint's data folder (default: its own)"
    )
    add_out_options(
        f, None, "last/, best/ and drift.csv (default runs/handnet/MODE)", "from OUT/last"
    )
    f.add_argument("--snapshot-every", type=non_negative_int, default=200,
                   help="keep the first-layer filters every N steps (0: never)")  # fmt: skip
    add_common_options(f)
    f.set_defaults(func=cmd_finetune, check=check_finetune)
    return parser


def _handnet_widths(text: str, fc4: int) -> tuple[int, ...]:
    from handnet.model import default_config

    widths = parse_widths(text)
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
        check_out(args.out, force=args.force)
        model, meta = check_checkpoint(args.source, "--from")
        if not isinstance(model, SimpleConvNet) or list(model.conv_names) != ["conv1", "conv2"]:
            layers = ", ".join(getattr(model, "conv_names", [])) or type(model).__name__
            raise AuditError(
                f"--from {args.source!r}: only a SimpleConvNet with two conv layers compiles "
                f"(this one has {layers}); prune it first (simpleconvnet prune)"
            )
        check_checkpoint_data(meta, args.data_dir)
        return
    classes = len(CLASS_NAMES[args.dataset])
    if args.fc4 < classes:
        raise AuditError(
            f"--fc4 {args.fc4}: the closed-form head needs fc4 at least as wide as the "
            f"{classes} classes: give --fc4 {classes} or more"
        )
    _handnet_widths(args.widths, args.fc4)
    check_device(args.device)
    check_out(args.out, force=args.force)
    check_data_options(args)


def check_finetune(args: argparse.Namespace) -> None:
    from handnet.model import HandNet

    check_device(args.device)
    args.out = args.out or f"runs/handnet/{args.mode}"
    check_out(
        args.out, resume=args.resume, force=args.force, resumable="last/model.json",
        nothing_to_resume=f"--resume: no finished epoch to resume from in {str(args.out)!r}",
    )  # fmt: skip
    model, meta = check_checkpoint(args.ckpt)
    if not isinstance(model, HandNet):
        raise AuditError(f"{args.ckpt!r} is not a HandNet checkpoint (build one: handnet build)")
    if model.config.free:
        raise AuditError(f"{args.ckpt!r} was already freed: fine-tune its hand-built parent")
    check_checkpoint_data(meta, args.data_dir)


def build_handnet(
    widths: tuple[int, ...], fc4: int, train: tuple[Any, Any], l2: float = 1e-4
) -> tuple[Any, Any]:
    """The hand-built HandNet of ``widths`` with its head fitted on ``train``; returns
    ``(model, HeadFit)``."""
    from handnet.head import fit_head
    from handnet.model import HandNet, default_config

    try:
        model = HandNet(default_config(widths, fc4))
    except ValueError as exc:
        raise AuditError(f"--widths: {exc}") from None
    return model, fit_head(model, train[0], train[1], l2)


def cmd_compile(args: argparse.Namespace) -> int:
    """``handnet build --from CKPT``: the network the checkpoint's explanation describes."""
    from dissect.infra.checkpoints import load_checkpoint_data, save_model
    from handnet.compile import compile_explanation
    from simpleconvnet.checkpoint import load_model
    from simpleconvnet.model import SimpleConvNet
    from simpleconvnet.train import evaluate

    device = setup_runtime(args)
    original, meta = load_model(args.source, SimpleConvNet, map_location=device)
    train = load_checkpoint_data(meta, "train", args.data_dir)
    test = load_checkpoint_data(meta, "test", args.data_dir)
    layers = tuple(args.compile.split(","))
    model = compile_explanation(original, *train, layers=layers)
    result, before = evaluate(model, *test), evaluate(original, *test)
    out_meta = {
        "kind": "HandNet", "stage": "compiled", "compiled_from": str(args.source),
        "compiled_layers": list(layers), "data": meta.get("data"), "metrics": result.metrics(),
        "original_metrics": before.metrics(),
    }  # fmt: skip
    if args.force:
        clear_run(args.out)
    if dist.is_main():
        save_model(args.out, model, out_meta)
        print(f"{', '.join(layers)} compiled from the explanation of {args.source}: test accuracy "
              f"{result.accuracy:.2%} (the original's {before.accuracy:.2%}); checkpoint in {args.out}/")  # fmt: skip
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from dissect.infra.checkpoints import save_model
    from dissect.infra.datasets import load_split
    from handnet.finetune import trainable_parameters
    from simpleconvnet.train import evaluate

    if args.source is not None:
        return cmd_compile(args)
    setup_runtime(args)
    train = load_split(args.dataset, "train", args.data_dir, args.download)
    test = load_split(args.dataset, "test", args.data_dir, False)
    model, head = build_handnet(_handnet_widths(args.widths, args.fc4), args.fc4, train, args.l2)
    result = evaluate(model, *test)
    meta = {
        "kind": "HandNet",
        "stage": "hand-built",
        "data": {"name": args.dataset, "data_dir": args.data_dir},
        "metrics": result.metrics(),
        "head_fit": {
            "method": "multinomial logistic regression (L-BFGS), conv layers frozen",
            "l2": args.l2,
            "train_accuracy": head.train_accuracy,
        },  # fmt: skip
        "trainable_parameters": trainable_parameters(model),
    }
    if args.force:
        clear_run(args.out)
    if dist.is_main():
        save_model(args.out, model, meta)
        print(f"HandNet {model.config.convs} hand-built on {args.dataset}: test accuracy "
              f"{result.accuracy:.2%} (train {head.train_accuracy:.2%}); checkpoint in "
              f"{args.out}/")  # fmt: skip
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from dissect.infra.atomic import atomic_save
    from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
    from handnet.finetune import filter_drift, finetune
    from handnet.model import HandNet
    from simpleconvnet.train import TrainConfig

    device = setup_runtime(args)
    model, meta = load_checkpoint(args.ckpt, map_location=device)
    if not isinstance(model, HandNet):
        raise AuditError(f"{args.ckpt!r} is not a HandNet checkpoint (build one: handnet build)")
    if model.config.free:
        raise AuditError(f"{args.ckpt!r} was already freed: fine-tune its hand-built parent")
    train = load_checkpoint_data(meta, "train", args.data_dir)
    test = load_checkpoint_data(meta, "test", args.data_dir)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         augment=not args.no_augment, seed=args.seed,
                         snapshot_every=args.snapshot_every)  # fmt: skip
    out = Path(args.out or f"runs/handnet/{args.mode}")
    if args.force:
        clear_run(out)
    before = HandNet(model.current_config()).to(device)
    before.load_state_dict(model.state_dict())
    parent = {"data": meta["data"], "parent": str(args.ckpt), "world_size": dist.world_size()}
    result = finetune(model, train, test, args.mode, config, out_dir=out, metadata=parent,
                      resume=args.resume, quiet=args.quiet)  # fmt: skip
    if dist.is_main():
        drift = filter_drift(before, result.model)
        atomic_save(out / "drift.csv", lambda p: drift.to_csv(p, index=False))
        print(f"HandNet fine-tuned ({args.mode}, {result.trainable} trainable parameters): test "
              f"accuracy {result.train.final.accuracy:.2%} after {args.epochs} epoch(s); "
              f"checkpoints and drift.csv in {out}/")  # fmt: skip
    return 0


def _main(argv: list[str] | None) -> int:
    from simpleconvnet.launch import dispatch

    return dispatch("handnet", build_parser, argv)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
