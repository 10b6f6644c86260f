"""Launched by torchrun (or plainly) from the tests and the scale-out benchmark: compute the
data-set-wide statistics of one checkpoint and, on rank 0, write them as JSON.

    dist_stats.py CKPT OUT.json
"""

from __future__ import annotations

import json
import sys

import torch

from dissect.ablation import ablate_accuracy
from dissect.activations import activation_stats
from dissect.contributions import contribution_table
from dissect.head import class_drivers
from dissect.infra import distributed as dist
from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
from dissect.infra.runtime import run_cli
from simpleconvnet.criteria import activation_variation, selectivity
from simpleconvnet.prune import PruneConfig, _cut, choose_by_score


def main(argv: list[str] | None) -> int:
    ckpt, out = sys.argv[1:3]
    dist.init_from_env(torch.device("cpu"))
    model, meta = load_checkpoint(ckpt)
    images, labels = load_checkpoint_data(meta, "test")
    layer = model.conv_names[-1]
    with torch.no_grad():
        stats = {
            "activation_std": activation_stats(model, layer, images)["std"].tolist(),
            "variation": activation_variation(model, "conv1", (images, labels)).tolist(),
            "selectivity": selectivity(model, "conv1", (images, labels)).tolist(),
            "drivers": class_drivers(model, images, labels)["mean_contribution"].tolist(),
            "ablation": ablate_accuracy(model, images, labels, layer, 0).tolist(),
            "share_data": contribution_table(model, layer, 0, images[:1], data=images)["share_data"]
            .dropna()
            .tolist(),
        }
    config = PruneConfig(weights={"variation": 1.0, "selectivity": 1.0})
    origins = {"conv1": list(range(model.conv1.weight.shape[0]))}
    _, removed = _cut(
        model,
        "conv1",
        model.conv1.weight.shape[0] // 2,
        (images, labels),
        config,
        choose_by_score,
        1,
        origins,
        [],
    )
    stats["pruned_channels"] = removed
    if dist.is_main():
        with open(out, "w") as f:
            json.dump(stats, f)
    dist.barrier()
    dist.shutdown()
    return dist.leave(0)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
