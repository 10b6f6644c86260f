"""Ablations: zero one channel at a time and measure what the network loses, per class (a
measurement; the claims of the explanations are checked in :mod:`dissect.faithfulness`)."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from dissect.infra import distributed as dist
from dissect.specimen import Specimen, specimen_of

__all__ = ["ablate_accuracy", "ablation_table"]


@torch.no_grad()
def ablate_accuracy(
    model: nn.Module | Specimen,
    images: torch.Tensor,
    labels: torch.Tensor,
    layer: str | None = None,
    channel: int | list[int] | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Per-class accuracy ``[K]`` with channel(s) ``channel`` of conv ``layer`` zeroed after the
    non-linearity that follows the conv (no ablation when ``layer`` is None). Counts are
    summed across ranks."""
    specimen = specimen_of(model)
    k = specimen.num_classes
    zero: dict[str, list[int]] = {}
    if layer is not None:
        specimen.check_layer(layer)
        zero[layer] = [channel] if isinstance(channel, int) else list(channel or [])

    def counts(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = specimen.run(x, {"logits"}, zero=zero)["logits"].argmax(1).cpu()
        hits = torch.bincount(y[pred == y], minlength=k)
        return torch.stack([hits, torch.bincount(y, minlength=k)]).double()

    total = dist.sharded_sum(counts, images, labels, batch_size=batch_size)
    return total[0] / total[1].clamp(min=1)


def ablation_table(
    model: nn.Module | Specimen,
    images: torch.Tensor,
    labels: torch.Tensor,
    layers: list[str] | None = None,
) -> pd.DataFrame:
    """One row per channel (1-based) of each conv layer: overall accuracy drop (points) and
    the drop for each class when that channel alone is zeroed."""
    specimen = specimen_of(model)
    base = ablate_accuracy(specimen, images, labels)
    rows = []
    for layer in layers or specimen.conv_names:
        for c in range(int(specimen.conv(layer).weight.shape[0])):
            acc = ablate_accuracy(specimen, images, labels, layer, c)
            drop = (base - acc) * 100
            row = {"layer": layer, "channel": c + 1, "drop": float(drop.mean())}
            row.update({f"drop_class_{k}": float(d) for k, d in enumerate(drop)})
            rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["baseline_per_class"] = base.tolist()
    return table
