"""Pruning criteria: callables ``score(model, layer, data) -> Tensor[C]``, higher = keep.

``data`` is ``(images [N, 1, 28, 28] in [0, 1], labels [N])``. Data-set statistics are taken on
this rank's shard and summed across ranks, so every process gets the same scores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dissect.activations import layer_activation
from dissect.infra import distributed as dist
from dissect.specimen import specimen_of

__all__ = [
    "Criterion",
    "CRITERIA",
    "activation_variation",
    "filter_structure",
    "superstimulus_structure",
    "selectivity",
    "rank_normalise",
    "combine",
]

Data = tuple[torch.Tensor, torch.Tensor]
Criterion = Callable[[nn.Module, str, Data], torch.Tensor]


#: ``(sum [C], sum of squares [C], count [], per-class sums [10, C], per-class counts [10])``
Sums = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@torch.no_grad()
def _channel_sums(model: nn.Module, layer: str, data: Data, batch_size: int = 500) -> Sums:
    """Per channel: sum, sum of squares and count of activations, and per-class sums of the
    spatial mean activation, over this rank's shard, reduced across ranks (float64)."""
    images, labels = data
    if len(images) == 0:
        raise ValueError("no images to take channel statistics over")
    device = next(model.parameters()).device

    def sums(x: torch.Tensor, y: torch.Tensor) -> Sums:
        a = layer_activation(model, layer, x.to(device)).double().cpu()
        y = y.cpu()
        per_class = torch.zeros(10, a.shape[1], dtype=torch.float64, device=a.device)
        return (
            a.sum((0, 2, 3)),
            (a * a).sum((0, 2, 3)),
            torch.tensor(
                float(a.shape[0] * a.shape[2] * a.shape[3]), dtype=torch.float64, device="cpu"
            ),
            per_class.index_add_(0, y, a.mean((2, 3))),
            torch.bincount(y, minlength=10).double(),
        )

    s1, s2, count, per_class, class_n = dist.sharded_sum(
        sums, images, labels, batch_size=batch_size
    )
    return s1, s2, count, per_class, class_n


def activation_variation(model: nn.Module, layer: str, data: Data) -> torch.Tensor:
    """Standard deviation of each channel's post-ReLU activation over images and positions."""
    s1, s2, n, _, _ = _channel_sums(model, layer, data)
    mean = s1 / n
    return (s2 / n - mean * mean).clamp(min=0).sqrt().float()


def selectivity(model: nn.Module, layer: str, data: Data) -> torch.Tensor:
    """How selectively a channel responds to the digit classes and to synthetic probes.

    Class part: ``(max_k m_k - mean_others) / (max_k m_k + mean_others)`` of the per-class mean
    activations ``m_k`` (0 for a channel that never fires). Probe part: the confidence of the
    channel's probe description (see :mod:`dissect.labels`). The score is their mean.
    """
    _, _, _, per_class, class_n = _channel_sums(model, layer, data)
    m = per_class / class_n.clamp(min=1)[:, None]  # [10, C]
    top = m.max(0).values
    others = (m.sum(0) - top) / (m.shape[0] - 1)
    digits = ((top - others) / (top + others).clamp(min=1e-12)).float()
    return 0.5 * (digits + _probe_selectivity(model, layer))


def _probe_selectivity(model: nn.Module, layer: str) -> torch.Tensor:
    from dissect.labels import describe_layer

    table = describe_layer(model, layer)
    # on the CPU, like the class part it is averaged with (from the .cpu() channel sums)
    return torch.tensor(table["confidence"].to_numpy(copy=True), dtype=torch.float32, device="cpu")


def low_frequency_share(weight: torch.Tensor) -> torch.Tensor:
    """Share of each outer channel's filter energy in the lowest spatial frequencies
    (|f| <= 1 cycle per kernel along both axes). ``weight: [O, I, k, k] -> [O]``; a zero
    filter scores 0, white noise about 9/25, a smooth line or edge detector much more."""
    power = torch.fft.fft2(weight.detach().double()).abs() ** 2  # [O, I, k, k]
    k = weight.shape[-1]
    f = torch.fft.fftfreq(k, device=weight.device) * k
    low = (f.abs() <= 1)[:, None] & (f.abs() <= 1)[None, :]
    total = power.sum((1, 2, 3))
    share = (power * low).sum((1, 2, 3)) / total.clamp(min=1e-30)
    return torch.where(total > 0, share, torch.zeros_like(share)).float()


def filter_structure(model: nn.Module, layer: str, data: Data) -> torch.Tensor:
    """The opposite of noise-likeness. Every layer: the low-frequency share of the filter's
    energy; first layer: its mean with the R^2 of a Gabor fit (:mod:`dissect.gabor`)."""
    specimen = specimen_of(model)
    weight = specimen.conv(layer).weight.detach().cpu()
    share = low_frequency_share(weight)
    if layer != specimen.conv_names[0]:
        return share
    from dissect.gabor import gabor_fit

    fits = [max(0.0, gabor_fit(w[0].numpy()).r2) for w in weight]
    r2 = torch.tensor(fits, dtype=torch.float32, device=share.device)
    return 0.5 * (share + r2)


def superstimulus_structure(
    model: nn.Module, layer: str, data: Data, steps: int = 128
) -> torch.Tensor:
    """``1 - plainness`` of each channel's superstimulus (:mod:`dissect.superstimuli`): a
    channel whose best input is a flat blob or nearly blank scores low."""
    from dissect.superstimuli import plainness_of_layer

    return 1.0 - plainness_of_layer(model, layer, steps=steps, seed=0).float().cpu()


CRITERIA: dict[str, Criterion] = {
    "variation": activation_variation,
    "structure": filter_structure,
    "superstimulus": superstimulus_structure,
    "selectivity": selectivity,
}


def rank_normalise(score: torch.Tensor) -> torch.Tensor:
    """Scores -> ranks scaled to [0, 1] (ties share the lower rank); scale-free across criteria."""
    n = len(score)
    if n == 1:
        return torch.ones(1, device=score.device)
    order = torch.argsort(torch.argsort(score.double(), stable=True), stable=True).float()
    return order / (n - 1)


def combine(scores: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Weighted mean of the rank-normalised scores: ``[C]``, higher = keep."""
    total = sum(weights.get(k, 0.0) for k in scores)
    if total <= 0:
        raise ValueError("criterion weights must not all be zero")
    # start from a zero tensor rather than 0: the same values, and the sum is typed as a tensor
    parts = (weights.get(k, 0.0) * rank_normalise(v) for k, v in scores.items())
    device = next(iter(scores.values())).device  # not empty: total > 0
    return sum(parts, torch.zeros((), device=device)) / total
