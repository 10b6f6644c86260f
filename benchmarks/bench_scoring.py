"""Cheaper pruning scores (issue: recipe and pipeline cost): does scoring channels on fewer
digits, or with fewer superstimulus steps, change which channels a cut keeps?

For a trained SimpleConvNet, every conv layer is scored as the first pruning cut scores it
(``simpleconvnet.selection``), with the default settings and with cheaper ones, and cut to the
first width of the default schedule. Per setting: the seconds spent scoring (measured in the same
run as the default's), and per layer how many of the kept channels differ from the default's
choice. A cheaper setting "changes no choice" when that count is 0 in every layer.

    python -m benchmarks.bench_scoring CKPT [--settings 1000:128,500:128,1000:64,500:64]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import torch

from benchmarks.common import emit
from dissect.infra.checkpoints import load_checkpoint_data
from dissect.infra.datasets import split_validation
from simpleconvnet.checkpoint import load_model
from simpleconvnet.model import SimpleConvNet
from simpleconvnet.prune_config import PruneConfig
from simpleconvnet.selection import _score_layer, choose_by_score, schedule, score_data


def keeps(model: SimpleConvNet, train: Any, config: PruneConfig) -> tuple[dict, float]:
    data = score_data(train, config.score_images)
    t0 = time.perf_counter()
    chosen = {}
    for layer, target in zip(model.conv_names, config.targets, strict=False):
        width = getattr(model, layer).out_channels
        first = schedule(width, target, config.iterations)[0]
        _, combined = _score_layer(model, layer, data, config)
        chosen[layer] = set(choose_by_score(layer, combined, first, 1))
    return chosen, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("ckpt")
    p.add_argument("--settings", default="1000:128,500:128,1000:64,500:64",
                   help="score_images:superstimulus_steps, the first is the reference")  # fmt: skip
    args = p.parse_args()
    torch.manual_seed(0)
    model, meta = load_model(args.ckpt, SimpleConvNet)
    train, _ = split_validation(*load_checkpoint_data(meta, "train"), meta.data["name"])
    settings = [tuple(int(v) for v in s.split(":")) for s in args.settings.split(",")]
    results: list[dict[str, Any]] = []
    reference: dict | None = None
    for images, steps in settings:
        config = replace(PruneConfig(), score_images=images, superstimulus_steps=steps)
        chosen, seconds = keeps(model, train, config)
        reference = reference or chosen
        differ = {layer: len(reference[layer] - chosen[layer]) for layer in chosen}
        results.append({"score_images": images, "superstimulus_steps": steps,
                        "seconds": seconds, "kept_channels_that_differ": differ,
                        "changes_no_choice": not any(differ.values())})  # fmt: skip
    base = results[0]["seconds"]
    for r in results:
        r["seconds_over_reference"] = r["seconds"] / base
    emit({"checkpoint": args.ckpt, "settings": results})


if __name__ == "__main__":
    main()
