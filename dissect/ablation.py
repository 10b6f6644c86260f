"""Faithfulness: zero one channel at a time and measure what the network loses, per class."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from dissect import distributed as dist

__all__ = ["ablate_accuracy", "ablation_table", "agreement"]


@torch.no_grad()
def ablate_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    layer: str | None = None,
    channel: int | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Per-class accuracy ``[K]`` with channel ``channel`` of conv ``layer`` zeroed after its
    ReLU (no ablation when ``layer`` is None). Counts are summed across ranks."""  # fmt: skip
    handle = None
    if layer is not None:
        relu = getattr(model, f"relu{layer[-1]}")

        def zero(module, inputs, output):
            output = output.clone()
            output[:, channel] = 0
            return output

        handle = relu.register_forward_hook(zero)
    k = int(model.fc5.out_features)
    device = next(model.parameters()).device
    correct, total = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
    idx = torch.as_tensor(list(dist.shard(len(images))), dtype=torch.long)
    try:
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            y = labels[part]
            pred = model(images[part].to(device)).argmax(1).cpu()
            total += torch.bincount(y, minlength=k).double()
            correct += torch.bincount(y[pred == y], minlength=k).double()
    finally:
        if handle is not None:
            handle.remove()
    return dist.all_reduce_sum(correct) / dist.all_reduce_sum(total).clamp(min=1)


def ablation_table(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layers: list[str] | None = None
) -> pd.DataFrame:
    """One row per channel (1-based) of each conv layer: overall accuracy drop (points) and
    the drop for each class when that channel alone is zeroed."""
    base = ablate_accuracy(model, images, labels)
    rows = []
    for layer in layers or list(model.conv_names):
        for c in range(int(getattr(model, layer).weight.shape[0])):
            acc = ablate_accuracy(model, images, labels, layer, c)
            drop = (base - acc) * 100
            row = {"layer": layer, "channel": c + 1, "drop": float(drop.mean())}
            row.update({f"drop_class_{k}": float(d) for k, d in enumerate(drop)})
            rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["baseline_per_class"] = base.tolist()
    return table


def agreement(
    ablations: pd.DataFrame,
    roles: pd.DataFrame,
    drivers: pd.DataFrame | None = None,
    weak_points: float = 0.5,
) -> pd.DataFrame:
    """Does the ablation agree with what the tables said?

    ``roles``: rows ``layer, channel, role`` (a channel's role in the contribution tables,
    e.g. its most common one); a ``weak`` channel agrees when zeroing it costs under
    ``weak_points`` accuracy points. ``drivers`` (from :func:`dissect.head.class_drivers`): the
    top channel of each class agrees when zeroing it hurts that class more than the average class.
    """  # fmt: skip
    rows = []
    merged = roles.merge(ablations, on=["layer", "channel"])
    for _, r in merged.iterrows():
        if r["role"] == "weak":
            rows.append({"claim": f"{r['layer']} channel {r['channel']} is weak", "evidence": f"drop {r['drop']:.2f} points",
                         "agrees": bool(r["drop"] < weak_points)})  # fmt: skip
    if drivers is not None:
        last = list(ablations["layer"].unique())[-1]
        for k, top in drivers[drivers["rank"] == 1][["class", "channel"]].itertuples(index=False):
            r = ablations[(ablations["layer"] == last) & (ablations["channel"] == top)].iloc[0]
            own = r[f"drop_class_{k}"]
            mean = r["drop"]
            rows.append({"claim": f"{last} channel {top} drives class {k}", "evidence": f"class {k} drop {own:.1f} vs mean {mean:.1f} points",
                         "agrees": bool(own > mean)})  # fmt: skip
    return pd.DataFrame(rows, columns=["claim", "evidence", "agrees"])
