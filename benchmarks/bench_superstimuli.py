"""Superstimuli benchmarks on a pruned SimpleConvNet: time of all conv2 channels in one batch
against one at a time (same settings), the share of channels whose superstimulus beats every
one of 100 test digits, and the class superstimuli's probabilities.

    python -m benchmarks.bench_superstimuli --ckpt runs/default/prune/final

``--run runs/default`` instead checks every network of a pipeline run, as the report makes its
superstimuli (the pipeline's steps, seed and training-digit starts): each channel's
superstimulus must reach at least the best of 100 test digits (10 per class, seeded); each
class's must be classified as its class with probability at least 0.9 and correlate more with
its own class's mean training digit than with any other's; how each started (``used``) is
listed, so that a fallback is seen.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import emit
from dissect.activations import layer_activation
from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
from dissect.superstimuli import class_superstimuli, layer_superstimuli


def check_run(run_dir: Path) -> dict:
    """Every network of the pipeline run ``run_dir``: its superstimuli made as the pipeline makes
    them, checked against the issue's bars (see the module doc)."""
    from dissect.infra.datasets import stratified_sample
    from dissect.specimen import specimen_of
    from dissect.steps import SuperstimuliConfig, best_of_digits, find_superstimuli
    from dissect.superstimuli import class_means, closest_to_own
    from reports.config import RunConfig
    from reports.networks import NETWORKS

    config = json.loads((run_dir / "run.json").read_text())
    steps = int(config.get("superstimulus_steps", RunConfig().superstimulus_steps))
    seed = int(config.get("seed", 0))
    found = {}
    for net in NETWORKS:
        record = run_dir / net.stage / "stage.json"
        if not record.is_file():
            continue
        model, meta = load_checkpoint(
            run_dir / json.loads(record.read_text())["summary"]["checkpoint"]
        )
        specimen = specimen_of(model)
        xt, yt = load_checkpoint_data(meta, "train")
        x, y = load_checkpoint_data(meta, "test")
        digits = x[stratified_sample(y, 10, seed)]
        settings = SuperstimuliConfig(steps=steps, seed=seed)
        channels = {}
        for layer in specimen.conv_names:
            s = find_superstimuli(specimen, layer, settings, xt, yt)
            bar = best_of_digits(specimen, s, digits)
            channels[layer] = {"beat_best_of_100_test_digits": int((s.activation >= bar).sum()),
                               "channels": len(bar), "used": sorted(set(s.used))}  # fmt: skip
        c = find_superstimuli(specimen, None, settings, xt, yt)
        closest = closest_to_own(c.images, class_means(xt, yt, specimen.num_classes))
        sure = c.activation >= 0.9
        found[net.key] = {
            "channels": channels,
            "classes_sure_and_closest_to_own_mean": int((sure & closest).sum()),
            "classes": len(sure),
            "class_probabilities": [round(float(p), 4) for p in c.activation],
            "class_used": c.used,
        }
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", type=Path, help="check every network of this pipeline run instead")
    p.add_argument("--ckpt")
    p.add_argument("--layer", default="conv2")
    p.add_argument("--steps", type=int, default=256)
    args = p.parse_args()
    if args.run is not None:
        emit({"run": str(args.run), "networks": check_run(args.run)})
        return
    if args.ckpt is None:
        p.error("give --ckpt or --run")
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
