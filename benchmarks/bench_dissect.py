"""Dissection benchmarks: exactness of every decomposition, time of a full dissection of a
pruned net, and the share of channels described with confidence.

    python -m benchmarks.bench_dissect --ckpt runs/default/prune/final --full runs/default/train/best
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import emit
from dissect.ablation import ablation_table
from dissect.contributions import contribution_table, layer_contributions
from dissect.gabor import gabor_fit
from dissect.head import class_drivers, head_contributions
from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
from dissect.labels import describe_model


@torch.no_grad()
def exactness(ckpt: str) -> dict:
    model, meta = load_checkpoint(ckpt)
    images, _ = load_checkpoint_data(meta, "test")
    worst = 0.0
    for layer in model.conv_names:
        for o in range(model.get_submodule(layer).weight.shape[0]):
            _, a, bias, y = layer_contributions(model, layer, images, o)
            worst = max(worst, float((bias + a.sum(1) - y).abs().max() / y.abs().max()))
    contrib, b = head_contributions(model, images)
    logits = model.logits(images)
    head = float((contrib.sum(2) + b - logits).abs().max() / logits.abs().max())
    return {
        "checkpoint": ckpt,
        "images": len(images),
        "conv_max_rel_error": worst,
        "head_max_rel_error": head,
    }


def full_dissection(ckpt: str) -> dict:
    model, meta = load_checkpoint(ckpt)
    images, labels = load_checkpoint_data(meta, "test")
    t0 = time.perf_counter()
    labels_table = describe_model(model)
    fits = [gabor_fit(w[0].numpy()) for w in model.conv1.weight.detach()]
    tables = 0
    for layer in model.conv_names[1:]:
        for o in range(model.get_submodule(layer).weight.shape[0]):
            contribution_table(model, layer, o, images[:1], data=images)
            tables += 1
    ablations = ablation_table(model, images, labels)
    class_drivers(model, images, labels)
    seconds = time.perf_counter() - t0
    shares = {
        layer: float(part["confident"].mean())
        for layer, part in labels_table.groupby("layer", sort=False)
    }
    return {
        "checkpoint": ckpt, "seconds": seconds, "contribution_tables": tables, "ablated_channels": len(ablations),
        "confident_description_share": shares, "conv1_gabor_r2_mean": sum(f.r2 for f in fits) / len(fits),
        "conv1_noise_like": sum(f.noise_like for f in fits),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ckpt", required=True, help="a trained, pruned SimpleConvNet checkpoint")
    p.add_argument("--full", help="the unpruned checkpoint (exactness over all of its layers)")
    args = p.parse_args()
    emit(
        {
            "exactness": [exactness(c) for c in filter(None, (args.full, args.ckpt))],
            "dissection": full_dissection(args.ckpt),
        }
    )


if __name__ == "__main__":
    main()
