"""Exact contributions: how each outer channel is built from the inner channels below it.

For conv layer ``L`` with weight ``w [C_out, C_in, k, k]`` and input ``x [N, C_in, H, W]``, the
contribution of inner channel ``j`` to outer channel ``o`` is ``a_j = conv2d(x_j, w[o, j])``, so
that ``y_o = bias_o + sum_j a_j`` exactly (before the ReLU). ``c_j`` is the running sum.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dissect import distributed as dist
from dissect.activations import block_input, check_layer, layer_activation

__all__ = [
    "contributions",
    "layer_contributions",
    "contribution_table",
    "ROLE_WEAK",
    "ROLE_THRESHOLD",
]

ROLE_WEAK = 0.5  # weak: a share under half of an equal split (0.5 / C_in) of the output
ROLE_THRESHOLD = 0.5  # |correlation of a_j with x_j| from which a_j reinforces / negates x_j


def _conv_args(conv: nn.Module) -> tuple[int | tuple, int | tuple]:
    return getattr(conv, "stride", 1), getattr(conv, "padding", 0)


def contributions(conv: nn.Module, x: torch.Tensor, out_channel: int) -> torch.Tensor:
    """``a [N, C_in, H_out, W_out]`` for outer channel ``out_channel`` of ``conv`` on its input
    ``x [N, C_in, H, W]``: ``bias + a.sum(1)`` equals ``conv(x)[:, out_channel]``."""
    weight = conv.weight[out_channel].unsqueeze(1)  # [C_in, 1, k, k]
    stride, padding = _conv_args(conv)
    return F.conv2d(x, weight, None, stride, padding, groups=x.shape[1])


def layer_contributions(model: nn.Module, layer: str, images: torch.Tensor, out_channel: int):
    """``(x [N, C_in, H, W], a [N, C_in, H', W'], bias, y [N, H', W'])`` for pixel images."""
    check_layer(model, layer)
    conv = getattr(model, layer)
    x = block_input(model, layer, images)
    a = contributions(conv, x, out_channel)
    bias = conv.bias[out_channel].detach() if conv.bias is not None else torch.zeros(())
    return x, a, bias, conv(x)[:, out_channel]


def _corr(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Correlation over everything but dim 1: ``u, v [N, C, H, W] -> [C]``."""
    u = u.transpose(0, 1).flatten(1).double()
    v = v.transpose(0, 1).flatten(1).double()
    u, v = u - u.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    return (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1)).clamp(min=1e-12)


@torch.no_grad()
def _dataset_shares(model, layer, images, out_channel, batch_size=250) -> torch.Tensor:
    """Mean over images of each a_j's signed share (a_j summed over positions, over the sum of
    their magnitudes); computed on this rank's shard and reduced across ranks."""
    idx = torch.as_tensor(list(dist.shard(len(images))), dtype=torch.long)
    device = next(model.parameters()).device
    total = None
    for start in range(0, len(idx), batch_size):
        _, a, _, _ = layer_contributions(
            model, layer, images[idx[start : start + batch_size]].to(device), out_channel
        )
        per = a.sum((2, 3)).double()
        share = (per / per.abs().sum(1, keepdim=True).clamp(min=1e-12)).sum(0).cpu()
        total = share if total is None else total + share
    return dist.all_reduce_sum(total) / len(images)


@torch.no_grad()
def contribution_table(
    model: nn.Module,
    layer: str,
    out_channel: int,
    image: torch.Tensor,
    *,
    data: torch.Tensor | None = None,
    inner_descriptions: list[str] | None = None,
) -> pd.DataFrame:
    """One row per inner channel ``j`` (1-based) of outer channel ``out_channel`` of ``layer``,
    for one pixel image ``[1, 1, 28, 28]`` (and, with ``data``, shares averaged over a data set).

    Columns: description of x_j, weight summary, a_j's share of the output on the image
    (a_j summed over positions, signed, over sum_j of their magnitudes), its share over the data set, correlation of a_j with y, the running
    sum c_j (of a_j summed over positions), and the role: ``reinforces`` (a_j correlates with x_j),
    ``negates`` (a_j anti-correlates with x_j), ``weak`` (share under half an equal split),
    ``other``. A last row
    holds the bias; the table's total equals y summed over positions.
    """
    x, a, bias, y = layer_contributions(model, layer, image, out_channel)
    w = getattr(model, layer).weight[out_channel]
    per = a.sum((0, 2, 3)).double()
    share = per / per.abs().sum().clamp(min=1e-12)
    same_size = x.shape[2:] == a.shape[2:]
    with_x = _corr(a, x) if same_size else torch.full((a.shape[1],), float("nan"))
    with_y = _corr(a, y.unsqueeze(1).expand_as(a))
    data_share = _dataset_shares(model, layer, data, out_channel) if data is not None else None
    rows = []
    for j in range(a.shape[1]):
        weak = (
            abs(float(share[j] if data_share is None else data_share[j])) < ROLE_WEAK / a.shape[1]
        )
        role = "weak" if weak else (
            "reinforces" if with_x[j] >= ROLE_THRESHOLD else "negates" if with_x[j] <= -ROLE_THRESHOLD else "other"
        )  # fmt: skip
        rows.append({
            "j": j + 1,
            "x_j": inner_descriptions[j] if inner_descriptions else ("input image" if a.shape[1] == 1 else f"channel {j + 1}"),
            "w_sum": float(w[j].sum()), "w_abs_sum": float(w[j].abs().sum()), "w_max": float(w[j].max()), "w_min": float(w[j].min()),
            "a_j": float(per[j]), "share_image": float(share[j]),
            "share_data": float(data_share[j]) if data_share is not None else float("nan"),
            "corr_a_x": float(with_x[j]), "corr_a_y": float(with_y[j]),
            "c_j": float(per[: j + 1].sum()), "role": role,
        })  # fmt: skip
    n_pos = y[0].numel()
    rows.append({"j": "bias", "x_j": "bias", "a_j": float(bias) * n_pos, "c_j": float(per.sum() + float(bias) * n_pos),
                 "role": ""})  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs.update(layer=layer, channel=out_channel + 1, y_sum=float(y.sum()))
    return table


__all__ += ["layer_activation"]
