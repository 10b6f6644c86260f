"""``simpleconvnet`` command line: train, evaluate and prune the plain ConvNet.

Every command checks all of its options (numbers, widths, the data set's files, the device, the
checkpoint, the output folder) before any work starts: bad input is one line on stderr
(``error: ...``) and exit code 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
from pathlib import Path

from dissect.infra import distributed as dist
from dissect.infra.datasets import DATASETS
from dissect.infra.errors import AuditError
from dissect.infra.runtime import (
    CliParser,
    check_device,
    check_writable,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_device,
    run_cli,
    whole_number,
)

__all__ = [
    "main",
    "build_parser",
    "add_common_options",
    "add_data_options",
    "add_out_options",
    "setup_runtime",
    "positive_int",
    "non_negative_int",
    "seed_number",
    "parse_widths",
    "check_out",
    "clear_run",
    "check_data_options",
    "RUN_FILES",
]

#: What a run folder of the suite holds (training, pruning, fine-tuning, a bare checkpoint):
#: an ``--out`` folder holding any of these already holds another run.
RUN_FILES = (
    "last", "best", "final", "last.*", "best.*", "final.*", "iter_*", "history.csv", "confusion.csv", "snapshots.safetensors",
    "scores.csv", "redundancy.json", "state.json", "drift.csv", "model.json",
    "model.safetensors", "optimizer.safetensors", "training_state.json",
)  # fmt: skip
SEED_MAX = 2**32 - 1


def seed_number(text: str) -> int:
    value = whole_number(text, 0)
    if value > SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {SEED_MAX}")
    return value


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every data-set command shares."""
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument(
        "--nproc", type=positive_int, default=1,
        help="run N processes on this machine through torchrun (gloo on CPU, NCCL on GPUs)",
    )  # fmt: skip


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist-5k", choices=DATASETS, help="data set")
    p.add_argument(
        "--data-dir", default=None,
        help="folder holding MNIST/raw or FashionMNIST/raw (torchvision's layout, plain or .gz) "
        "or the four *-ubyte.gz files; only read (.gz files are unpacked into ~/.cache)",
    )  # fmt: skip
    p.add_argument(
        "--download", action="store_true", help="download MNIST into --data-dir (needs internet)"
    )


def add_out_options(
    p: argparse.ArgumentParser, default: str | None, what: str, resume: str | None
) -> None:
    """``--out`` plus ``--force`` (and ``--resume`` when ``resume`` says what it continues)."""
    shown = f" (default {default})" if default else ""
    p.add_argument("--out", default=default, help=f"output folder for {what}{shown}")
    if resume:
        p.add_argument("--resume", action="store_true", help=f"continue {resume}")
    p.add_argument(
        "--force", action="store_true",
        help="overwrite the run files already in --out (otherwise such a folder is refused)",
    )  # fmt: skip


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
    t.add_argument("--no-augment", action="store_true", help="train without random affine")
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
    from simpleconvnet import cli_prune

    cli_prune.register(sub)
    return parser


def parse_widths(text: str, option: str = "--widths") -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise AuditError(f"{option} {text!r}: give 2 or 3 comma-separated numbers") from None
    if len(widths) not in (2, 3) or min(widths) < 1:
        raise AuditError(f"{option} {text!r}: give 2 or 3 positive comma-separated numbers")
    return widths


# -- checks shared by the commands that write a folder ------------------------------------------
def _run_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise AuditError(f"cannot read the --out folder {str(folder)!r} ({exc.strerror})") from None
    return [n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in RUN_FILES)]


def check_out(
    folder: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    resumable: str | None = None,
    nothing_to_resume: str = "",
) -> Path:
    """An ``--out`` folder that already holds a run is refused unless ``--resume`` continues it
    or ``--force`` overwrites it; ``--resume`` needs ``resumable`` (a path inside it)."""
    out = check_writable(folder)
    if resume and force:
        raise AuditError("--resume and --force contradict each other: give one of them")
    if resume:
        if resumable is not None:  # a kill between the two renames of a folder swap: repair it
            from simpleconvnet.checkpoint import recover_folder

            recover_folder(out / Path(resumable).parts[0])
        if resumable is not None and not (out / resumable).is_file():
            raise AuditError(nothing_to_resume or f"--resume: nothing to resume in {str(out)!r}")
        return out
    found = _run_files(out)
    if found and not force:
        listed = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        hint = "--resume to continue it, " if resumable else ""
        raise AuditError(
            f"--out {str(out)!r} already holds a run ({listed}): add {hint}--force to "
            "overwrite it, or choose another --out"
        )
    return out


def clear_run(folder: str | Path) -> None:
    """``--force``: remove the run files (only those, see :data:`RUN_FILES`) from ``folder``;
    rank 0 does it and every rank waits."""
    out = Path(folder)
    if dist.is_main():
        for name in _run_files(out):
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    dist.barrier()


def check_data_options(args: argparse.Namespace) -> None:
    from dissect.infra.datasets import check_data

    check_data(args.dataset, args.data_dir, getattr(args, "download", False))


def check_checkpoint(path: str, option: str = "CKPT"):
    """Load a checkpoint on the CPU (a cheap, complete check); returns ``(model, meta)``."""
    from dissect.infra.checkpoints import load_checkpoint

    if not path:
        raise AuditError(f"{option}: give a checkpoint folder")
    return load_checkpoint(path, map_location="cpu")


def check_checkpoint_data(meta: dict, data_dir: str | None = None) -> None:
    from dissect.infra.datasets import check_data

    data = meta.get("data") or {}
    if not data.get("name"):
        raise AuditError("checkpoint does not say which data set it was trained on")
    check_data(str(data["name"]), data_dir or data.get("data_dir"))


def setup_runtime(args: argparse.Namespace):
    """Resolve the device and join torchrun's process group when launched by it."""
    return dist.init_from_env(resolve_device(args.device))


# -- train -----------------------------------------------------------------------------------
def check_train(args: argparse.Namespace) -> None:
    parse_widths(args.widths)
    check_device(args.device)
    check_out(
        args.out, resume=args.resume, force=args.force, resumable="last/model.json",
        nothing_to_resume=f"--resume: no finished epoch to resume from in {str(args.out)!r}",
    )  # fmt: skip
    check_data_options(args)


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
    if args.force:
        clear_run(args.out)
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


# -- eval ------------------------------------------------------------------------------------
def check_eval(args: argparse.Namespace) -> None:
    check_device(args.device)
    if args.out is not None:
        check_writable(args.out)
    _, meta = check_checkpoint(args.ckpt)
    check_checkpoint_data(meta, args.data_dir)


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from dissect.infra.atomic import atomic_save, atomic_write_text
    from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
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
