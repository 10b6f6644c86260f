"""Activations of conv layers, by layer name: the maps a person looks at and the statistics
other modules build on. Inputs are pixels ``[N, 1, 28, 28]`` in [0, 1]."""

from __future__ import annotations

import torch
from torch import nn

from dissect import distributed as dist
from dissect.errors import AuditError

__all__ = [
    "check_layer",
    "conv_output",
    "layer_activation",
    "block_input",
    "activation_maps",
    "activation_stats",
]


def check_layer(model: nn.Module, layer: str) -> int:
    """1-based block index of conv ``layer``; a bad name is one clear error listing the valid ones."""
    names = list(getattr(model, "conv_names", []))
    if layer not in names:
        raise AuditError(
            f"no conv layer {layer!r} in this model: valid layers are {', '.join(names)}"
        )
    return names.index(layer) + 1


def block_input(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """What conv ``layer`` reads: the normalised image for conv1, else the previous block's
    pooled output. ``[N, C_in, H, W]``, on the model's device (``x`` may be elsewhere)."""
    i = check_layer(model, layer)
    h = model.normalize(x.to(next(model.parameters()).device))
    for j in range(1, i):
        h = model.block(j, h)
    return h


def conv_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Pre-activation output of conv ``layer``: ``[N, C_out, H, W]``."""
    return getattr(model, layer)(block_input(model, layer, x))


def layer_activation(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Post-ReLU map of conv ``layer`` (before pooling): ``[N, C_out, H, W]``."""
    return torch.relu(conv_output(model, layer, x))


@torch.no_grad()
def activation_maps(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Post-ReLU maps of every channel of ``layer`` for the images ``x``: ``[N, C, H, W]``."""
    return layer_activation(model, layer, x)


@torch.no_grad()
def activation_stats(
    model: nn.Module, layer: str, images: torch.Tensor, batch_size: int = 500
) -> dict[str, torch.Tensor]:
    """Per channel over a data set (this rank's shard, summed across ranks): ``mean``, ``std``
    of the post-ReLU activation over images and positions, and ``active`` (share of positive
    values). Each ``[C]``."""
    device = next(model.parameters()).device
    idx = torch.as_tensor(list(dist.shard(len(images))), dtype=torch.long)
    sums = None
    for start in range(0, len(idx), batch_size):
        a = (
            layer_activation(model, layer, images[idx[start : start + batch_size]].to(device))
            .double()
            .cpu()
        )
        part = torch.stack(
            [a.sum((0, 2, 3)), (a * a).sum((0, 2, 3)), (a > 0).double().sum((0, 2, 3))]
        )
        n = torch.tensor(float(a.shape[0] * a.shape[2] * a.shape[3]))
        sums = (part, n) if sums is None else (sums[0] + part, sums[1] + n)
    assert sums is not None
    total, n = dist.all_reduce_sum(sums[0]), dist.all_reduce_sum(sums[1])
    mean = total[0] / n
    return {
        "mean": mean.float(),
        "std": (total[1] / n - mean**2).clamp(min=0).sqrt().float(),
        "active": (total[2] / n).float(),
    }
