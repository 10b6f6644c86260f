"""What every data-set command line of the suite shares (``simpleconvnet``, ``handnet``,
``reports``): the common options, the checks of ``--out`` and of a checkpoint, ``--force``'s
clearing of a run folder, and joining torchrun's process group.

Every command checks all of its options before any work starts: bad input is one line on
stderr (``error: ...``) and exit code 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
from pathlib import Path

import torch

from dissect.infra import distributed as dist
from dissect.infra.checkpoints import CheckpointMeta, load_checkpoint
from dissect.infra.datasets import DATASETS, check_data
from dissect.infra.errors import AuditError
from dissect.infra.runtime import (
    check_writable,
    non_negative_int,
    positive_int,
    resolve_device,
    whole_number,
)
from simpleconvnet.checkpoint import recover_folder

__all__ = [
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
    "check_checkpoint",
    "check_checkpoint_data",
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
    check_data(args.dataset, args.data_dir, getattr(args, "download", False))


def check_checkpoint(path: str, option: str = "CKPT") -> tuple[torch.nn.Module, CheckpointMeta]:
    """Load a checkpoint on the CPU (a cheap, complete check); returns ``(model, meta)``."""
    if not path:
        raise AuditError(f"{option}: give a checkpoint folder")
    return load_checkpoint(path, map_location="cpu")


def check_checkpoint_data(meta: CheckpointMeta, data_dir: str | None = None) -> None:
    data = meta.data
    if not data.get("name"):
        raise AuditError("checkpoint does not say which data set it was trained on")
    check_data(str(data["name"]), data_dir or data.get("data_dir"))


def setup_runtime(args: argparse.Namespace) -> torch.device:
    """Resolve the device and join torchrun's process group when launched by it."""
    return dist.init_from_env(resolve_device(args.device))
