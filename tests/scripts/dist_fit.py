"""Launched by torchrun from the tests: train on the tiny IDX data with a twist per rank.

``guard``: every rank but 0 fails if it tries to write any file (only rank 0 writes).
``fail``: rank 1 raises a user error after the first epoch (the whole run must fail).
``cut``: every rank is interrupted after the first epoch; ``resume`` then goes on from there.
"""

from __future__ import annotations

import sys

import torch

import dissect.infra.atomic
import simpleconvnet.train as train_module
from dissect.infra import distributed as dist
from dissect.infra.datasets import load_split, split_validation
from dissect.infra.errors import AuditError
from dissect.infra.runtime import run_cli
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.train import TrainConfig, fit


def main(argv: list[str] | None) -> int:
    mode, data_dir, out = sys.argv[1:4]
    dist.init_from_env(torch.device("cpu"))
    if mode == "guard" and dist.rank() != 0:

        def refuse(*args, **kwargs):
            raise RuntimeError(f"rank {dist.rank()} tried to write a file")

        dissect.infra.atomic.atomic_path = refuse
        train_module.atomic_path = refuse
        train_module.atomic_save = refuse

    def on_epoch_end(epoch: int, row: dict) -> None:
        if mode == "fail" and dist.rank() == 1:
            raise AuditError("rank 1 was told to fail")
        if mode == "cut" and epoch == 1:
            raise KeyboardInterrupt

    model = SimpleConvNet(SimpleConvNetConfig(convs=(4, 6), fc4=16))
    init_weights(model, torch.Generator().manual_seed(0))
    train, val = split_validation(*load_split("mnist", "train", data_dir), "mnist")
    test = load_split("mnist", "test", data_dir)
    config = TrainConfig(epochs=2, batch_size=40, seed=0)
    fit(
        model,
        train,
        test,
        config,
        val=val,
        out_dir=out,
        quiet=True,
        on_epoch_end=on_epoch_end,
        resume=mode == "resume",
    )
    dist.barrier()
    dist.shutdown()
    return dist.leave(0)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
