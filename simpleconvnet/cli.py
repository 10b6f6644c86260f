"""``simpleconvnet`` command line: train, evaluate and prune the plain ConvNet."""

from __future__ import annotations

import argparse
from pathlib import Path

from dissect import distributed as dist
from dissect.errors import AuditError
from dissect.infra.datasets import DATASETS
from dissect.runtime import resolve_device, run_cli

__all__ = ["main", "build_parser", "add_common_options", "add_data_options", "setup_runtime"]


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every data-set command shares."""
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument(
        "--nproc", type=int, default=1,
        help="run N processes on this machine through torchrun (gloo on CPU, NCCL on GPUs)",
    )  # fmt: skip


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", default="mnist-5k", choices=DATASETS, help="data set (default mnist-5k)"
    )
    p.add_argument("--data-dir", default=None, help="folder holding the torchvision data set")
    p.add_argument("--download", action="store_true", help="download MNIST (needs internet)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simpleconvnet", description="Train, evaluate and prune the plain SimpleConvNet."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("train", help="train a SimpleConvNet", description="Train a SimpleConvNet.")
    add_data_options(t)
    t.add_argument("--epochs", type=positive_int, default=15, help="epochs (default 15)")
    t.add_argument("--batch-size", type=positive_int, default=64, help="global batch (default 64)")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    t.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    t.add_argument("--widths", default="32,64,128", help="conv widths, 2 or 3 (default 32,64,128)")
    t.add_argument("--fc4", type=positive_int, default=128, help="width of fc4 (default 128)")
    t.add_argument("--no-augment", action="store_true", help="train without random affine")
    t.add_argument("--seed", type=int, default=0, help="seed for init, order, augmentation")
    t.add_argument("--out", default="runs/simpleconvnet", help="output folder")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last")
    t.add_argument(
        "--snapshot-every", type=int, default=200,
        help="keep the first-layer filters every N steps for the report's animation (0: never)",
    )  # fmt: skip
    add_common_options(t)
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="evaluate a checkpoint", description="Evaluate a checkpoint.")
    e.add_argument("ckpt", help="checkpoint folder (holding model.json and model.safetensors)")
    e.add_argument("--split", choices=("train", "test"), default="test")
    e.add_argument("--data-dir", default=None, help="override the checkpoint's data folder")
    e.add_argument("--out", default=None, help="write metrics.json and confusion.csv here")
    add_common_options(e)
    e.set_defaults(func=cmd_eval)
    from simpleconvnet import cli_prune

    cli_prune.register(sub)
    return parser


def parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise AuditError(f"--widths {text!r}: give 2 or 3 comma-separated numbers") from None
    if len(widths) not in (2, 3) or min(widths) < 1:
        raise AuditError(f"--widths {text!r}: give 2 or 3 positive comma-separated numbers")
    return widths


def setup_runtime(args: argparse.Namespace):
    """Resolve the device and join torchrun's process group when launched by it."""
    return dist.init_from_env(resolve_device(args.device))


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from dissect.infra.datasets import load_split
    from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
    from simpleconvnet.train import TrainConfig, fit

    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        augment=not args.no_augment, seed=args.seed, snapshot_every=args.snapshot_every,
    )  # fmt: skip
    model_config = SimpleConvNetConfig(convs=parse_widths(args.widths), fc4=args.fc4)
    device = setup_runtime(args)
    train = load_split(args.dataset, "train", args.data_dir, args.download)
    test = load_split(args.dataset, "test", args.data_dir, False)
    model = SimpleConvNet(model_config)
    init_weights(model, torch.Generator().manual_seed(args.seed))
    model.to(device)
    meta = {
        "kind": "SimpleConvNet",
        "data": {"name": args.dataset, "data_dir": args.data_dir},
        "world_size": dist.world_size(),
    }
    result = fit(
        model, train, test, config, out_dir=args.out, metadata=meta,
        resume=args.resume, quiet=args.quiet,
    )  # fmt: skip
    if dist.is_main():
        print(
            f"SimpleConvNet {model_config.convs} on {args.dataset}: test accuracy "
            f"{result.final.accuracy:.2%} (best {result.best_accuracy:.2%}) after "
            f"{config.epochs} epoch(s), {result.seconds:.1f} s; checkpoints in {args.out}/"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from dissect.atomic import atomic_save, atomic_write_text
    from dissect.checkpoints import load_checkpoint, load_checkpoint_data
    from simpleconvnet.train import evaluate

    device = setup_runtime(args)
    model, meta = load_checkpoint(args.ckpt, map_location=device)
    images, labels = load_checkpoint_data(meta, args.split, args.data_dir)
    result = evaluate(model, images, labels)
    if dist.is_main():
        print(
            f"{meta.get('kind', 'model')} {args.ckpt}: {args.split} accuracy {result.accuracy:.2%}"
        )
        for k, acc in enumerate(result.per_class):
            print(f"  class {k}: {acc:.2%}")
        if args.out:
            out = Path(args.out)
            atomic_write_text(out / "metrics.json", json.dumps(result.metrics(), indent=2))
            atomic_save(out / "confusion.csv", lambda p: result.confusion.to_csv(p))
    return 0


def _main(argv: list[str] | None) -> int:
    from simpleconvnet.launch import dispatch

    return dispatch("simpleconvnet", build_parser, argv)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
