"""Head contributions: fc4 -> fc5 is linear, so every class logit is exactly a sum over the
last conv block's channels (and positions) plus one bias."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from dissect import distributed as dist

__all__ = ["head_matrix", "head_contributions", "class_drivers"]


def head_matrix(model: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W [K, C, P], b [K])`` with ``logits = sum_{c,p} W[k, c, p] z[c, p] + b[k]``, where
    ``z`` is the last conv block's pooled output ``[C, P]`` (P positions)."""
    w = model.fc5.weight @ model.fc4.weight  # [K, C*P]
    b = model.fc5.weight @ model.fc4.bias + model.fc5.bias
    return w.reshape(w.shape[0], channels, -1), b


def head_contributions(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(contrib [N, K, C], bias [K])``: ``contrib.sum(2) + bias`` equals the logits of the
    pixel images ``x [N, 1, 28, 28]``."""
    z = model.features(x)  # [N, C, h, w]
    w, b = head_matrix(model, z.shape[1])
    return torch.einsum("kcp,ncp->nkc", w, z.flatten(2)), b


@torch.no_grad()
def class_drivers(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> pd.DataFrame:
    """Which channels drive class k: mean contribution of each last-block channel to the logit
    of class k over the images of class k (this rank's shard, summed across ranks).

    Columns: class, channel (1-based), mean_contribution, share (of the class's positive total),
    rank (1 = drives the class most)."""
    device = next(model.parameters()).device
    idx = torch.as_tensor(list(dist.shard(len(images))), dtype=torch.long)
    sums = counts = None
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        contrib, _ = head_contributions(model, images[part].to(device))
        y = labels[part].to(device)
        own = contrib[torch.arange(len(y)), y].double().cpu()  # [n, C]
        k = int(model.fc5.out_features)
        s = torch.zeros(k, own.shape[1], dtype=torch.float64).index_add_(0, y.cpu(), own)
        c = torch.bincount(y.cpu(), minlength=k).double()
        sums, counts = (s, c) if sums is None else (sums + s, counts + c)
    sums, counts = dist.all_reduce_sum(sums), dist.all_reduce_sum(counts)
    mean = sums / counts.clamp(min=1)[:, None]
    rows = []
    for k, row in enumerate(mean):
        positive = float(row.clamp(min=0).sum()) or 1.0
        order = torch.argsort(row, descending=True)
        for rank, c in enumerate(order.tolist(), start=1):
            rows.append({"class": k, "channel": c + 1, "mean_contribution": float(row[c]),
                         "share": float(row[c]) / positive, "rank": rank})  # fmt: skip
    return pd.DataFrame(rows)
