"""Activations of conv layers, by module path: the maps a person looks at and the statistics
other modules build on. Every function takes a model or a :class:`~dissect.specimen.Specimen`
and pixel images ``[N, C, H, W]`` in [0, 1]."""

from __future__ import annotations

import torch
from torch import nn

from dissect.infra import distributed as dist
from dissect.specimen import Specimen, specimen_of

__all__ = [
    "check_layer",
    "conv_output",
    "layer_activation",
    "block_input",
    "activation_maps",
    "activation_stats",
]

Model = nn.Module | Specimen


def check_layer(model: Model, layer: str) -> int:
    """1-based position of conv ``layer``; a bad name is one clear error listing the conv layers."""
    return specimen_of(model).check_layer(layer) + 1


def block_input(model: Model, layer: str, x: torch.Tensor) -> torch.Tensor:
    """What conv ``layer`` reads in the real forward pass: ``[N, C_in, H, W]``, on the model's
    device (``x`` may be elsewhere)."""
    specimen = specimen_of(model)
    specimen.check_layer(layer)
    return specimen.run(x, {f"{layer}:in"})[f"{layer}:in"]


def conv_output(model: Model, layer: str, x: torch.Tensor) -> torch.Tensor:
    """What conv ``layer`` writes (before its non-linearity): ``[N, C_out, H, W]``."""
    specimen = specimen_of(model)
    specimen.check_layer(layer)
    return specimen.run(x, {layer})[layer]


def layer_activation(model: Model, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Conv ``layer``'s map after the non-linearity that follows it (before pooling):
    ``[N, C_out, H, W]``."""
    specimen = specimen_of(model)
    specimen.check_layer(layer)
    return specimen.run(x, {f"{layer}:post"})[f"{layer}:post"]


@torch.no_grad()
def activation_maps(model: Model, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Post-activation maps of every channel of ``layer`` for the images ``x``: ``[N, C, H, W]``."""
    return layer_activation(model, layer, x)


@torch.no_grad()
def activation_stats(
    model: Model, layer: str, images: torch.Tensor, batch_size: int = 500
) -> dict[str, torch.Tensor]:
    """Per channel over a data set (this rank's shard, summed across ranks): ``mean``, ``std``
    of the post-activation map over images and positions, and ``active`` (share of positive
    values). Each ``[C]``."""
    specimen = specimen_of(model)

    def part(batch: torch.Tensor) -> torch.Tensor:
        a = layer_activation(specimen, layer, batch).double().cpu()
        n = float(a.shape[0] * a.shape[2] * a.shape[3])
        sums = [a.sum((0, 2, 3)), (a * a).sum((0, 2, 3)), (a > 0).double().sum((0, 2, 3))]
        return torch.cat(
            [torch.stack(sums).flatten(), torch.tensor([n], dtype=torch.float64, device=a.device)]
        )

    total = dist.sharded_sum(part, images, batch_size=batch_size)
    c = (len(total) - 1) // 3
    sums, n = total[:-1].view(3, c), total[-1]
    mean = sums[0] / n
    return {
        "mean": mean.float(),
        "std": (sums[1] / n - mean**2).clamp(min=0).sqrt().float(),
        "active": (sums[2] / n).float(),
    }
