"""Exact contributions: how each outer channel is built from the inner channels below it.

For conv layer ``L`` with weight ``w [C_out, C_in, k, k]`` and input ``x [N, C_in, H, W]``, the
contribution of inner channel ``j`` to outer channel ``o`` is ``a_j = conv2d(x_j, w[o, j])``, so
that ``y_o = bias_o + sum_j a_j`` exactly (before the ReLU). ``c_j`` is the running sum.
"""

from __future__ import annotations

from typing import Any, cast

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dissect.infra import distributed as dist
from dissect.specimen import ConvLike, Specimen, specimen_of
from dissect.terms import row_term, term_words

__all__ = [
    "contributions",
    "inner_channels",
    "layer_contributions",
    "dataset_shares",
    "contribution_table",
    "ROLE_WEAK",
    "ROLE_WEAK_CHANGE",
    "dataset_magnitudes",
    "weak_rows",
    "removal_hook",
    "set_removal_hook",
    "removal_change",
    "ROLE_THRESHOLD",
]

#: weak: rows whose a_j each carry under half of an equal split (0.5 / C_in) of the magnitude
#: sum_j |a_j| (over positions), taken smallest first while removing them all together moves
#: the channel's post-activation output by at most ROLE_WEAK_CHANGE of its mean magnitude
ROLE_WEAK = 0.5
ROLE_WEAK_CHANGE = 0.10
ROLE_THRESHOLD = 0.5  # |correlation of a_j with x_j| from which a_j reinforces / negates x_j


def inner_channels(conv: ConvLike, out_channel: int) -> range:
    """The input channels outer channel ``out_channel`` reads (all of them unless grouped)."""
    groups = int(getattr(conv, "groups", 1))
    per_group = int(conv.weight.shape[1])
    g = out_channel // (int(conv.weight.shape[0]) // groups)
    return range(g * per_group, (g + 1) * per_group)


def contributions(conv: ConvLike, x: torch.Tensor, out_channel: int) -> torch.Tensor:
    """``a [N, C_read, H_out, W_out]`` for outer channel ``out_channel`` of ``conv`` on its input
    ``x [N, C_in, H, W]``, one map per inner channel it reads (:func:`inner_channels`):
    ``bias + a.sum(1)`` equals ``conv(x)[:, out_channel]`` for any kernel size, stride,
    padding and padding mode, dilation and groups."""
    weight = conv.weight[out_channel].unsqueeze(1)  # [C_read, 1, kh, kw]
    x = x[:, inner_channels(conv, out_channel)]
    padding = getattr(conv, "padding", 0)
    mode = getattr(conv, "padding_mode", "zeros")
    if mode != "zeros":
        x = F.pad(x, cast(Any, conv)._reversed_padding_repeated_twice, mode=mode)
        padding = 0
    stride, dilation = getattr(conv, "stride", 1), getattr(conv, "dilation", 1)
    return F.conv2d(x, weight, None, stride, padding, dilation, groups=x.shape[1])


def layer_contributions(
    model: nn.Module | Specimen, layer: str, images: torch.Tensor, out_channel: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x [N, C_read, H, W], a [N, C_read, H', W'], bias, y [N, H', W'])`` for pixel images:
    what outer channel ``out_channel`` of ``layer`` reads, its contributions, its bias and its
    output in the real forward pass (``bias + a.sum(1) == y``)."""
    specimen = specimen_of(model)
    conv = specimen.conv(layer)
    acts = specimen.run(images, {f"{layer}:in", layer})
    x = acts[f"{layer}:in"]
    a = contributions(conv, x, out_channel)
    bias = getattr(conv, "bias", None)
    b = bias[out_channel].detach() if bias is not None else torch.zeros((), device=a.device)
    return x[:, inner_channels(conv, out_channel)], a, b, acts[layer][:, out_channel]


def _corr(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Correlation over everything but dim 1: ``u, v [N, C, H, W] -> [C]``."""
    u = u.transpose(0, 1).flatten(1).double()
    v = v.transpose(0, 1).flatten(1).double()
    u, v = u - u.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    return (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1)).clamp(min=1e-12)


@torch.no_grad()
def dataset_shares(
    specimen: Specimen, layer: str, images: torch.Tensor, out_channel: int
) -> torch.Tensor:
    """Mean over images of each a_j's signed share (a_j summed over positions, over the sum of
    their magnitudes); computed on this rank's shard and reduced across ranks."""

    def shares(batch: torch.Tensor) -> torch.Tensor:
        per = layer_contributions(specimen, layer, batch, out_channel)[1].sum((2, 3)).double()
        return (per / per.abs().sum(1, keepdim=True).clamp(min=1e-12)).sum(0)

    return dist.sharded_sum(shares, images, batch_size=250) / len(images)


def _magnitudes(a: torch.Tensor) -> torch.Tensor:
    """``a [N, C, H, W] -> [N, C]``: each a_j's share of the magnitude sum_j |a_j|, all taken
    over positions (where a_j changes sign across the map, its parts do not cancel)."""
    per = a.abs().sum((2, 3)).double()
    return per / per.sum(1, keepdim=True).clamp(min=1e-12)


def dataset_magnitudes(
    specimen: Specimen, layer: str, images: torch.Tensor, out_channel: int
) -> torch.Tensor:
    """Mean over images of each a_j's share of the magnitude (:func:`_magnitudes`)."""

    def shares(batch: torch.Tensor) -> torch.Tensor:
        return _magnitudes(layer_contributions(specimen, layer, batch, out_channel)[1]).sum(0)

    return dist.sharded_sum(shares, images, batch_size=250) / len(images)


def removal_hook(specimen: Specimen, layer: str, channel: int, inner: list[int]):
    """A forward hook that takes the contributions of ``inner`` out of ``channel``'s sum."""
    conv = specimen.conv(layer)
    reads = list(inner_channels(conv, channel))
    rows = [reads.index(j) for j in inner]

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        a = contributions(conv, inputs[0], channel)[:, rows].sum(1)
        output = output.clone()
        output[:, channel] -= a
        return output

    return hook


def set_removal_hook(
    specimen: Specimen, layer: str, channel: int, sets: list[list[int]], copies: int
):
    """:func:`removal_hook` for several sets of inner channels at once: the batch holds
    ``len(sets)`` copies of ``copies`` images (copy ``s`` of image ``i`` at ``s * copies + i``),
    and copy ``s`` loses the contributions of ``sets[s]``."""
    conv = specimen.conv(layer)
    reads = list(inner_channels(conv, channel))
    take = torch.zeros(len(sets), len(reads), dtype=torch.bool, device="cpu")
    for s, inner in enumerate(sets):
        take[s, [reads.index(j) for j in inner]] = True

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        a = contributions(conv, inputs[0], channel)  # [N, C_read, H, W]
        mask = take.to(a.device).repeat_interleave(copies, 0)
        output = output.clone()
        output[:, channel] -= a.masked_fill(~mask[:, :, None, None], 0).sum(1)
        return output

    return hook


@torch.no_grad()
def removal_change(
    specimen: Specimen, layer: str, channel: int, inner: list[int], images: torch.Tensor
) -> float:
    """How far removing the contributions of ``inner`` moves ``channel``'s post-activation
    output (after the non-linearity and pooling that follow ``layer``) over ``images``: the
    mean absolute change over the mean magnitude. Sharded across ranks."""
    post = f"{layer}:post"
    hooks = {layer: removal_hook(specimen, layer, channel, inner)} if inner else {}

    def sums(x: torch.Tensor) -> torch.Tensor:
        before = specimen.run(x, {post})[post][:, channel].double()
        after = specimen.run(x, {post}, hooks=hooks)[post][:, channel].double()
        return torch.stack([(after - before).abs().sum(), before.abs().sum(),
                            before.new_tensor(before.numel())])  # fmt: skip

    moved, size, count = dist.sharded_sum(sums, images)
    return float((moved / count) / (size / count).clamp(min=1e-12))


def weak_rows(
    specimen: Specimen, layer: str, channel: int, magnitude: torch.Tensor, images: torch.Tensor
) -> set[int]:
    """The rows (0-based positions in the table) called weak: each under ``ROLE_WEAK`` of an
    equal split of the magnitude, taken smallest first while removing them all together moves
    the channel's post-activation output on ``images`` by at most ``ROLE_WEAK_CHANGE``."""
    reads = list(inner_channels(specimen.conv(layer), channel))
    limit, weak = ROLE_WEAK / len(magnitude), list[int]()
    for j in torch.argsort(magnitude.cpu(), stable=True).tolist():
        if float(magnitude[j]) >= limit:
            break
        if (
            removal_change(specimen, layer, channel, [reads[k] for k in [*weak, j]], images)
            > ROLE_WEAK_CHANGE
        ):
            break
        weak.append(j)
    return set(weak)


@torch.no_grad()
def contribution_table(
    model: nn.Module | Specimen,
    layer: str,
    out_channel: int,
    image: torch.Tensor,
    *,
    data: torch.Tensor | None = None,
    inner_descriptions: list[str] | None = None,
) -> pd.DataFrame:
    """One row per inner channel ``j`` (1-based) of outer channel ``out_channel`` of ``layer``,
    for one pixel image ``[1, C, H, W]`` (and, with ``data``, shares averaged over a data set).
    Rows are the inner channels the outer channel reads (all of them unless the conv is grouped).

    Columns: description of x_j, weight summary, a_j's share of the output on the image
    (a_j summed over positions, signed, over sum_j of their magnitudes), its share over the data set, correlation of a_j with y, the running
    sum c_j (of a_j summed over positions), and the role: ``reinforces`` (a_j correlates with x_j),
    ``negates`` (a_j anti-correlates with x_j), ``weak`` (a small share of the magnitude
    sum_j |a_j| whose removal barely moves the channel's output, :func:`weak_rows`; on the
    data set when given), ``other``; and the row's weights as one oriented term over x_j
    (:func:`dissect.terms.row_term`: signed strength at its place, right and up, in the profile
    x_j's description gives). A last row holds the bias; the table's total equals y summed over
    positions.
    """
    specimen = specimen_of(model)
    x, a, bias, y = layer_contributions(specimen, layer, image, out_channel)
    w = specimen.conv(layer).weight[out_channel]
    reads = list(inner_channels(specimen.conv(layer), out_channel))
    per = a.sum((0, 2, 3)).double()
    share = per / per.abs().sum().clamp(min=1e-12)
    same_size = x.shape[2:] == a.shape[2:]
    with_x = _corr(a, x) if same_size else torch.full((a.shape[1],), float("nan"), device=a.device)
    with_y = _corr(a, y.unsqueeze(1).expand_as(a))
    data_share = dataset_shares(specimen, layer, data, out_channel) if data is not None else None
    magnitude = (
        _magnitudes(a)[0]
        if data is None
        else dataset_magnitudes(specimen, layer, data, out_channel)
    )
    weak = weak_rows(specimen, layer, out_channel, magnitude, image if data is None else data)
    rows = []
    for j in range(a.shape[1]):
        role = "weak" if j in weak else (
            "reinforces" if with_x[j] >= ROLE_THRESHOLD else "negates" if with_x[j] <= -ROLE_THRESHOLD else "other"
        )  # fmt: skip
        rows.append({
            "j": reads[j] + 1,
            "x_j": inner_descriptions[reads[j]] if inner_descriptions else ("input image" if len(reads) == 1 else f"channel {reads[j] + 1}"),
            "w_sum": float(w[j].sum()), "w_abs_sum": float(w[j].abs().sum()), "w_max": float(w[j].max()), "w_min": float(w[j].min()),
            "a_j": float(per[j]), "share_image": float(share[j]), "magnitude": float(magnitude[j]),
            "share_data": float(data_share[j]) if data_share is not None else float("nan"),
            "corr_a_x": float(with_x[j]), "corr_a_y": float(with_y[j]),
            "c_j": float(per[: j + 1].sum()), "role": role,
            "term": term_words(row_term(w[j], inner_descriptions[reads[j]] if inner_descriptions else None)),
        })  # fmt: skip
    n_pos = y[0].numel()
    rows.append({"j": "bias", "x_j": "bias", "a_j": float(bias) * n_pos, "c_j": float(per.sum() + float(bias) * n_pos),
                 "role": "", "term": ""})  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs.update(layer=layer, channel=out_channel + 1, y_sum=float(y.sum()))
    return table
