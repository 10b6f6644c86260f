"""``--nproc N``: hand a command over to torchrun on this machine (one process per rank)."""

from __future__ import annotations

import os
import sys

from dissect.infra.distributed import launched_by_torchrun

__all__ = ["maybe_relaunch", "dispatch"]


def maybe_relaunch(module: str, argv: list[str], nproc: int) -> int | None:
    """Re-run ``python -m module argv`` under torchrun with ``nproc`` processes.

    Returns the exit code, or None when no relaunch is needed (nproc 1 or already launched).
    """
    if nproc <= 1 or launched_by_torchrun():
        return None
    import subprocess

    args = [a for i, a in enumerate(argv) if not _is_nproc(argv, i)]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", "-m", module, *args,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.call(cmd, env=env)


def _is_nproc(argv: list[str], i: int) -> bool:
    a = argv[i]
    return a == "--nproc" or a.startswith("--nproc=") or (i > 0 and argv[i - 1] == "--nproc")


def dispatch(module: str, build_parser, argv: list[str] | None) -> int:
    """The body of every data-set command line: parse ``argv``, check every option (the
    subcommand's ``check(args)``, before any work and before handing over to torchrun), hand
    over to torchrun when ``--nproc N`` asks for it, else run the chosen subcommand and leave
    the process group."""
    from dissect.infra import distributed as dist

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    code = maybe_relaunch(module, argv, getattr(args, "nproc", 1))
    if code is not None:
        return code
    try:
        code = int(args.func(args) or 0)
        dist.barrier()  # every rank done before any leaves: gloo aborts a rank whose peer left
    finally:
        dist.shutdown()
    return dist.leave(code)
