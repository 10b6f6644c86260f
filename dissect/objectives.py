"""Objectives to maximise, as small composable factories.

An objective maps the captured activations (a dict: ``"input"`` the image in [0, 1],
``"LAYER"`` a conv layer's output, ``"LAYER:post"`` after its non-linearity, ``"logits"`` the
class scores, ``"log_softmax"``; see :class:`~dissect.specimen.Specimen`) to
one value per image ``[N]``. Objectives add, subtract and scale:
``channel("conv2", 3) - 0.1 * channel("conv2", 5)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "Objective",
    "channel",
    "channels_batch",
    "neuron",
    "class_logit",
    "class_study",
    "classes_batch",
    "classes_confidence",
    "l2",
    "total_variation",
    "diversity",
]

Acts = dict[str, torch.Tensor]


class Objective:
    """``fn(acts) -> Tensor[N]`` with the names of the activations it reads."""

    def __init__(self, fn: Callable[[Acts], torch.Tensor], needs: set[str], name: str = "") -> None:
        self.fn, self.needs, self.name = fn, set(needs), name

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: Objective) -> Objective:
        return Objective(
            lambda a: self(a) + other(a), self.needs | other.needs, f"{self.name} + {other.name}"
        )

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), self.needs, f"-{self.name}")

    def __sub__(self, other: Objective) -> Objective:
        return self + (-other)

    def __mul__(self, k: float) -> Objective:
        return Objective(lambda a: k * self(a), self.needs, f"{k} * {self.name}")

    __rmul__ = __mul__


def channel(layer: str, n: int) -> Objective:
    """Mean activation of outer channel ``n`` (0-based) of ``layer`` (``"conv2"`` before its
    non-linearity, ``"conv2:post"`` after it)."""
    return Objective(lambda a: a[layer][:, n].mean((1, 2)), {layer}, f"{layer}:{n}")


def channels_batch(layer: str, channels: torch.Tensor) -> Objective:
    """Image ``b`` of the batch maximises channel ``channels[b]`` of ``layer``: all channels of a
    layer optimised together in one batch."""

    def fn(a: Acts) -> torch.Tensor:
        act = a[layer]
        return act[torch.arange(len(act), device=act.device), channels.to(act.device)].mean((1, 2))

    return Objective(fn, {layer}, f"{layer}:batch")


def neuron(layer: str, n: int, y: int, x: int) -> Objective:
    """Activation of channel ``n`` of ``layer`` at one position."""
    return Objective(lambda a: a[layer][:, n, y, x], {layer}, f"{layer}:{n}@{y},{x}")


def class_logit(k: int) -> Objective:
    return Objective(lambda a: a["logits"][:, k], {"logits"}, f"logit {k}")


def class_study(k: int) -> Objective:
    """The original MNIST study's class objective, as something to maximise:
    ``-(-10 * log_softmax[k] + sum(log_softmax))``: class ``k`` sure, the others unlikely."""
    return Objective(
        lambda a: 10 * a["log_softmax"][:, k] - a["log_softmax"].sum(1),
        {"log_softmax"},
        f"class {k}",
    )


def classes_batch(classes: torch.Tensor) -> Objective:
    """Image ``b`` maximises the study's objective for class ``classes[b]``."""

    def fn(a: Acts) -> torch.Tensor:
        lsm = a["log_softmax"]
        own = lsm[torch.arange(len(lsm), device=lsm.device), classes.to(lsm.device)]
        return 10 * own - lsm.sum(1)

    return Objective(fn, {"log_softmax"}, "classes:batch")


def classes_confidence(classes: torch.Tensor, most: float = 0.999) -> Objective:
    """Image ``b`` maximises ``log p(classes[b])``, capped at ``log most``: bounded, so once the
    class is sure the regularisers shape the image instead of an ever larger logit margin (the
    study's objective is linear in the logits and drives the pixels to saturation)."""
    cap = math.log(most)

    def fn(a: Acts) -> torch.Tensor:
        lsm = a["log_softmax"]
        return lsm[torch.arange(len(lsm), device=lsm.device), classes.to(lsm.device)].clamp(max=cap)

    return Objective(fn, {"log_softmax"}, "classes:confidence")


def l2(weight: float = 1.0) -> Objective:
    """``-weight * mean(image^2)``: keeps the image dark where nothing is needed."""
    return Objective(lambda a: -weight * (a["input"] ** 2).mean((1, 2, 3)), {"input"}, "l2")


def total_variation(weight: float = 1.0) -> Objective:
    """``-weight * mean |neighbour differences|``: favours smooth strokes over speckle."""

    def fn(a: Acts) -> torch.Tensor:
        x = a["input"]
        dy = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2, 3))
        dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean((1, 2, 3))
        return -weight * (dx + dy)

    return Objective(fn, {"input"}, "tv")


def diversity(layer: str, weight: float = 1.0) -> Objective:
    """``-weight *`` mean cosine similarity of each image's ``layer`` activations to the rest
    of the batch: pushes a batch that maximises one unit towards different solutions."""

    def fn(a: Acts) -> torch.Tensor:
        flat = torch.nn.functional.normalize(a[layer].flatten(1), dim=1)
        sim = flat @ flat.T
        n = len(flat)
        return -weight * (sim.sum(1) - 1) / max(1, n - 1)

    return Objective(fn, {layer}, "diversity")
