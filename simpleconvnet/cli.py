"""``simpleconvnet`` command line: train, evaluate and prune the plain ConvNet.

Every command checks all of its options (numbers, widths, the data set's files, the device, the
checkpoint, the output folder) before any work starts: bad input is one line on stderr
(``error: ...``) and exit code 2, and nothing is written. The options and checks the suite's
commands share are in :mod:`simpleconvnet.cli_common`; ``prune`` is :mod:`simpleconvnet.cli_prune`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dissect.infra import distributed as dist
from dissect.infra.atomic import atomic_save, atomic_write_text
from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
from dissect.infra.runtime import (
    CliParser,
    check_device,
    check_writable,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run_cli,
)
from simpleconvnet import cli_prune
from simpleconvnet.cli_common import (
    add_common_options,
    add_data_options,
    add_out_options,
    check_checkpoint,
    check_checkpoint_data,
    check_data_options,
    check_out,
    clear_run,
    parse_widths,
    seed_number,
    setup_runtime,
)
from simpleconvnet.data import AUGMENTATIONS
from simpleconvnet.evaluation import evaluate
from simpleconvnet.launch import dispatch
from simpleconvnet.steps import TrainStep, train_step
from simpleconvnet.train import TrainConfig

#: The shared helpers imported below stay importable from here, but their home (and the place
#: to import them from) is simpleconvnet.cli_common.
__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="simpleconvnet", description="Train, evaluate and prune the plain SimpleConvNet."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("train", help="train a SimpleConvNet", description="Train a SimpleConvNet.")
    add_data_options(t)
    t.add_argument("--epochs", type=positive_int, default=15, help="epochs")
    t.add_argument("--batch-size", type=positive_int, default=64, help="global batch")
    t.add_argument("--lr", type=positive_float, default=3e-3, help="peak learning rate")
    t.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimiser")
    t.add_argument("--widths", default="32,64,128", help="conv widths, 2 or 3 comma-separated")
    t.add_argument("--fc4", type=positive_int, default=128, help="width of fc4")
    t.add_argument(
        "--augment", choices=AUGMENTATIONS, default="auto",
        help="auto: the data set's own (digits: random affine; clothes, for fashion-mnist: flips "
        "and 2-pixel shifts); none: no augmentation",
    )  # fmt: skip
    t.add_argument("--no-augment", action="store_true", help="the same as --augment none")
    t.add_argument(
        "--elastic", type=non_negative_float, default=TrainConfig().elastic,
        help="pixels of smooth random warp added to the digits' augmentation",
    )  # fmt: skip
    t.add_argument(
        "--label-smoothing", type=non_negative_float, default=None,
        help="share of each target spread over all classes (default: the data set's own, 0.1 "
        "for fashion-mnist, 0 for the digits)",
    )  # fmt: skip
    t.add_argument(
        "--weight-decay", type=non_negative_float, default=TrainConfig().weight_decay,
        help="L2 penalty of the optimiser",
    )  # fmt: skip
    t.add_argument("--seed", type=seed_number, default=0, help="seed for init, order, augmentation")
    add_out_options(t, "runs/simpleconvnet", "last/, best/ and history.csv", "from OUT/last")
    t.add_argument(
        "--snapshot-every", type=non_negative_int, default=200,
        help="keep the first-layer filters every N steps for the report's animation (0: never)",
    )  # fmt: skip
    add_common_options(t)
    t.set_defaults(func=cmd_train, check=check_train)
    e = sub.add_parser("eval", help="evaluate a checkpoint", description="Evaluate a checkpoint.")
    e.add_argument("ckpt", help="checkpoint folder (holding model.json and model.safetensors)")
    e.add_argument("--split", choices=("train", "test"), default="test", help="which split")
    e.add_argument(
        "--data-dir", default=None, help="override the checkpoint's data folder (default: its own)"
    )
    e.add_argument("--out", default=None, help="write metrics.json and confusion.csv here")
    add_common_options(e)
    e.set_defaults(func=cmd_eval, check=check_eval)
    cli_prune.register(sub)
    return parser


# -- train -----------------------------------------------------------------------------------
def check_train(args: argparse.Namespace) -> None:
    parse_widths(args.widths)
    check_device(args.device)
    check_out(
        args.out, resume=args.resume, force=args.force, resumable="last/model.json",
        nothing_to_resume=f"--resume: no finished epoch to resume from in {str(args.out)!r}",
    )  # fmt: skip
    check_data_options(args)


def train_step_of(args: argparse.Namespace) -> TrainStep:
    """The :class:`~simpleconvnet.steps.TrainStep` that ``simpleconvnet train``'s options ask for."""
    training = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        augment="none" if args.no_augment else args.augment, elastic=args.elastic,
        label_smoothing=args.label_smoothing, weight_decay=args.weight_decay, seed=args.seed,
        snapshot_every=args.snapshot_every,
    )  # fmt: skip
    return TrainStep(
        dataset=args.dataset, data_dir=args.data_dir, widths=parse_widths(args.widths),
        fc4=args.fc4, training=training, download=args.download, resume=args.resume,
    )  # fmt: skip


def cmd_train(args: argparse.Namespace) -> int:
    step = train_step_of(args)
    device = setup_runtime(args)
    if args.force:
        clear_run(args.out)
    outcome = train_step(step, args.out, device, args.quiet)
    if dist.is_main():
        print(outcome.message)
    return 0


# -- eval ------------------------------------------------------------------------------------
def check_eval(args: argparse.Namespace) -> None:
    check_device(args.device)
    if args.out is not None:
        check_writable(args.out)
    _, meta = check_checkpoint(args.ckpt)
    check_checkpoint_data(meta, args.data_dir)


def cmd_eval(args: argparse.Namespace) -> int:
    device = setup_runtime(args)
    model, meta = load_checkpoint(args.ckpt, map_location=device)
    images, labels = load_checkpoint_data(meta, args.split, args.data_dir)
    result = evaluate(model, images, labels)
    if dist.is_main():
        print(f"{meta.kind or 'model'} {args.ckpt}: {args.split} accuracy {result.accuracy:.2%}")
        for k, acc in enumerate(result.per_class):
            print(f"  class {k}: {acc:.2%}")
        if args.out:
            out = Path(args.out)
            atomic_write_text(out / "metrics.json", json.dumps(result.metrics(), indent=2))
            atomic_save(out / "confusion.csv", lambda p: result.confusion.to_csv(p))
    return 0


def _main(argv: list[str] | None) -> int:
    return dispatch("simpleconvnet", build_parser, argv)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
