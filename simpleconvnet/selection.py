"""Which channels a pruning cut keeps: the width schedule, the choosers and the cut itself.

Pure parts: :func:`schedule` (widths per iteration) and :func:`choose_by_score` /
:func:`choose_at_random` (which channels stay, given the combined scores). :func:`cut` scores a
layer with the configured criteria, asks a chooser and removes the other channels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from simpleconvnet.criteria import CRITERIA, combine
from simpleconvnet.model import SimpleConvNet
from simpleconvnet.prune_config import PruneConfig
from simpleconvnet.surgery import remove_channels

__all__ = ["Chooser", "schedule", "choose_by_score", "choose_at_random", "score_data", "cut"]

Data = tuple[torch.Tensor, torch.Tensor]
#: ``chooser(layer, combined scores [C], n_keep, iteration) -> sorted indices kept``
Chooser = Callable[[str, torch.Tensor, int, int], list[int]]


def schedule(start: int, target: int, iterations: int) -> list[int]:
    """Widths after each of ``iterations`` cuts: geometric from ``start`` to ``target``."""
    if target >= start:
        return [start] * iterations
    ratio = (target / start) ** (1 / iterations)
    widths = [max(target, round(start * ratio**k)) for k in range(1, iterations + 1)]
    widths[-1] = target
    return widths


def choose_by_score(layer: str, combined: torch.Tensor, n_keep: int, iteration: int) -> list[int]:
    """Keep the ``n_keep`` channels with the highest combined score (ties: lower index)."""
    order = torch.argsort(-combined, stable=True)
    return sorted(order[:n_keep].tolist())


def choose_at_random(seed: int) -> Chooser:
    """A baseline chooser: ``n_keep`` channels drawn at random (seeded per layer/iteration)."""

    def choose(layer: str, combined: torch.Tensor, n_keep: int, iteration: int) -> list[int]:
        g = torch.Generator().manual_seed(seed * 7919 + iteration * 31 + int(layer[-1]))
        return sorted(torch.randperm(len(combined), generator=g, device=g.device)[:n_keep].tolist())

    return choose


def _score_layer(
    model, layer, data, config: PruneConfig
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    options = {"superstimulus": {"steps": config.superstimulus_steps}}
    scores = {
        name: CRITERIA[name](model, layer, data, **options.get(name, {})).cpu()
        for name, w in config.weights.items()
        if w > 0
    }
    return scores, combine(scores, config.weights)


def score_data(train: Data, n: int) -> Data:
    """``n`` images (and labels) spread evenly over ``train``: what the criteria score on."""
    stride = max(1, len(train[0]) // n)
    return train[0][::stride][:n], train[1][::stride][:n]


def cut(
    model: SimpleConvNet,
    layer: str,
    width: int,
    data: Data,
    config: PruneConfig,
    chooser: Chooser,
    iteration: int,
    origins: dict[str, list[int]],
    score_rows: list[dict[str, Any]],
) -> tuple[SimpleConvNet, list[int]]:
    """Score ``layer``, keep ``width`` channels; returns the smaller model and the original
    (1-based) numbers of the channels that went. Appends a row per channel to ``score_rows``
    and updates ``origins[layer]`` (each kept channel's index in the unpruned model)."""
    scores, combined = _score_layer(model, layer, data, config)
    keep = chooser(layer, combined, width, iteration)
    origin = origins[layer]
    for c in range(len(combined)):
        score_rows.append({
            "iteration": iteration, "layer": layer, "channel": c + 1, "original_channel": origin[c] + 1,
            **{k: float(v[c]) for k, v in scores.items()}, "combined": float(combined[c]), "kept": c in keep,
        })  # fmt: skip
    removed = [origin[c] + 1 for c in range(len(combined)) if c not in keep]
    origins[layer] = [origin[k] for k in keep]
    return remove_channels(model, layer, keep), removed
