"""Small helpers for running under ``torchrun`` (torch.distributed), and unchanged without it.

Every data-set loop in the suite splits its work by rank and combines results with
collective reductions; files are written by rank 0 only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import overload

import torch
import torch.distributed as dist

from dissect.infra.errors import AuditError

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "init_from_env",
    "shutdown",
    "leave",
    "all_reduce_sum",
    "shard",
    "barrier",
]


def launched_by_torchrun() -> bool:
    """True when torchrun's environment variables are present."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device, timeout_s: float = 300.0) -> torch.device:
    """Initialise the process group when launched by torchrun; return the device for this rank.

    gloo on the CPU, NCCL on CUDA (one GPU per local rank). Without torchrun's variables this
    does nothing and returns ``device`` unchanged.
    """
    if not launched_by_torchrun() or is_distributed():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise AuditError(
                f"local rank {local} has no GPU of its own ({torch.cuda.device_count()} on this "
                f"machine): start at most that many processes per node, or use --device cpu"
            )
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        backend = "nccl"
    else:
        backend = "gloo"
    try:
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    except Exception as exc:  # pragma: no cover - depends on the launcher's environment
        raise AuditError(f"could not join the torchrun process group ({backend}): {exc}") from exc
    return device


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def leave(code: int) -> int:
    """End a finished process: under torchrun, exit at once with ``code`` (after
    :func:`shutdown`); without torchrun, return ``code`` for the caller to exit with.

    At interpreter exit the process group's C++ threads were seen to abort a torchrun worker
    whose work was done and written ("terminate called without an active exception", about one
    run in sixteen of the two-process pipeline), failing a run that had succeeded.
    """
    if launched_by_torchrun():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks (in place on a copy) and return it; identity on one process.

    Float sums are reduced in float64 so the result does not depend on the number of ranks
    beyond rounding.
    """
    if not is_distributed():
        return t
    wide = torch.float64 if t.is_floating_point() else torch.int64
    work = t.detach().to(_comm_device(), wide, copy=True)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(t.device, t.dtype)


def _comm_device() -> torch.device:
    """Where collectives take their tensors: this rank's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(n: int) -> range:
    """The indices ``0..n-1`` that this rank handles (a strided split, every index once)."""
    return range(rank(), n, world_size())


def broadcast_object(obj, src: int = 0):
    """``obj`` as rank ``src`` has it, on every rank (a picklable Python value); identity on one
    process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@overload
def sharded_sum(
    fn: Callable[..., torch.Tensor], *data: torch.Tensor, batch_size: int = 500
) -> torch.Tensor: ...


@overload
def sharded_sum(
    fn: Callable[..., tuple[torch.Tensor, ...]], *data: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, ...]: ...


def sharded_sum(
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    *data: torch.Tensor,
    batch_size: int = 500,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The data-set-wide loop: ``fn(*batch)`` over this rank's shard of ``data`` (tensors indexed
    together along dim 0), in batches, summed in float64 on the CPU, then summed across ranks.

    ``fn`` returns one tensor or a tuple of tensors (several sums taken in one pass over the
    data); each is summed on its own and the result has the same form.
    """
    # CPU indices: they index tensors on any device (data on the GPU as well as on the CPU)
    idx = torch.as_tensor(list(shard(len(data[0]))), dtype=torch.long, device="cpu")
    total: tuple[torch.Tensor, ...] | None = None
    single = False
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        single, value = _as_sums(fn(*(d[part] for d in data)))
        total = value if total is None else tuple(t + v for t, v in zip(total, value, strict=True))
    if total is None:  # a rank with no data still takes part in the reduction
        single, value = _as_sums(fn(*(d[:1] for d in data)))
        total = tuple(v * 0 for v in value)
    reduced = tuple(all_reduce_sum(t) for t in total)
    return reduced[0] if single else reduced


def _as_sums(
    value: torch.Tensor | tuple[torch.Tensor, ...],
) -> tuple[bool, tuple[torch.Tensor, ...]]:
    """``(whether fn returned one tensor, its tensors in float64 on the CPU)``."""
    single = isinstance(value, torch.Tensor)
    parts = (value,) if isinstance(value, torch.Tensor) else tuple(value)
    return single, tuple(p.detach().double().cpu() for p in parts)


__all__ += ["broadcast_object", "launched_by_torchrun", "sharded_sum"]
