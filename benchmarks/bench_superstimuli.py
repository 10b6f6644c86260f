"""Superstimuli benchmarks on a pruned SimpleConvNet: time of all conv2 channels in one batch
against one at a time (same settings), the share of channels whose superstimulus beats every
one of 100 test digits, and the class superstimuli's probabilities.

    python -m benchmarks.bench_superstimuli --ckpt runs/default/prune/final
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import emit
from dissect.activations import layer_activation
from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
from dissect.superstimuli import class_superstimuli, layer_superstimuli


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--layer", default="conv2")
    p.add_argument("--steps", type=int, default=256)
    args = p.parse_args()
    model, meta = load_checkpoint(args.ckpt)
    images, _ = load_checkpoint_data(meta, "test")
    layer_superstimuli(model, args.layer, steps=4)  # warm-up (thread pools, FFT plans)
    t0 = time.perf_counter()
    batched = layer_superstimuli(model, args.layer, steps=args.steps)
    t_batch = time.perf_counter() - t0
    width = len(batched.activation)
    t0 = time.perf_counter()
    for c in range(width):
        layer_superstimuli(model, args.layer, steps=args.steps, channels=[c])
    t_single = time.perf_counter() - t0
    beats = {}
    digits = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:100]]
    for layer in model.conv_names:
        s = batched if layer == args.layer else layer_superstimuli(model, layer, steps=args.steps)
        with torch.no_grad():
            best_digit = layer_activation(model, layer, digits).mean((2, 3)).amax(0)
        beats[layer] = float((s.activation > best_digit).float().mean())
    classes = class_superstimuli(model, steps=args.steps)
    emit({
        "checkpoint": args.ckpt, "layer": args.layer, "channels": width, "steps": args.steps,
        "batched_seconds": t_batch, "one_at_a_time_seconds": t_single,
        "batched_images_per_s": width / t_batch, "one_at_a_time_images_per_s": width / t_single,
        "speed_ratio": t_single / t_batch, "share_beating_100_digits": beats,
        "class_probabilities": [round(float(a), 5) for a in classes.activation],
        "classes_above_0_99": int((classes.activation > 0.99).sum()),
    })  # fmt: skip


if __name__ == "__main__":
    main()
