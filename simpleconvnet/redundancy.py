"""Redundant-layer test: does a conv layer only copy the layer before it?

For each channel of ``layer`` the best absolute correlation of its post-ReLU map with a channel
of the previous block's output (the map ``layer`` reads, same resolution), over a data set.
A layer whose channels are all near-copies adds little; whether it can go is then decided by
accuracy: the net without it (the rest retrained) must stay within the budget.
"""

from __future__ import annotations

import torch

from dissect.infra import distributed as dist
from simpleconvnet.criteria import layer_activation
from simpleconvnet.model import SimpleConvNet

__all__ = ["COPY_CORRELATION", "copy_correlation", "refit_head_without"]

#: A channel whose map correlates at least this much with one map of the layer before it is a
#: near-copy of that map; a layer copies when its channels do on average.
COPY_CORRELATION = 0.8


@torch.no_grad()
def copy_correlation(
    model: SimpleConvNet, layer: str, images: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each channel of ``layer``: ``(best |corr| [C], index of that previous channel [C])``.

    Correlation is over images and positions between ``relu(conv_layer)`` and the previous
    block's pooled output. Sums are taken on this rank's shard and reduced across ranks.
    """
    i = model.conv_names.index(layer)
    if i == 0:
        raise ValueError("the first conv layer has no layer before it")
    prev = model.conv_names[i - 1]
    device = next(model.parameters()).device

    def sums(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = x.to(device)
        before = getattr(model, f"pool{i}")(layer_activation(model, prev, x))
        after = layer_activation(model, layer, x)
        a = after.permute(1, 0, 2, 3).reshape(after.shape[1], -1).double().cpu()
        b = before.permute(1, 0, 2, 3).reshape(before.shape[1], -1).double().cpu()
        n = torch.tensor(float(a.shape[1]), device=a.device)
        return a.sum(1), b.sum(1), (a * a).sum(1), (b * b).sum(1), a @ b.T, n

    sa, sb, saa, sbb, sab, n = dist.sharded_sum(sums, images, batch_size=batch_size)
    cov = sab / n - torch.outer(sa / n, sb / n)
    var_a = (saa / n - (sa / n) ** 2).clamp(min=1e-12)
    var_b = (sbb / n - (sb / n) ** 2).clamp(min=1e-12)
    corr = (cov / torch.sqrt(torch.outer(var_a, var_b))).abs()
    best, where = corr.max(1)
    return best.float(), where


@torch.no_grad()
def refit_head_without(
    model: SimpleConvNet,
    without: SimpleConvNet,
    images: torch.Tensor,
    ridge: float = 1e-3,
    batch_size: int = 500,
) -> float:
    """Set ``without.fc4`` (the net with its last conv layer removed) to the least-squares map
    from the previous layer's features to what ``model``'s fc4 computed through that layer.

    This is a closed-form, convex fit (ridge regression over the data set, sums reduced across
    ranks); its R^2 says how much of the removed layer's effect on fc4 is a linear function of
    the layer before it, i.e. how far the layer only copies it. Returns that R^2.
    """
    device = next(model.parameters()).device

    def sums(x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # z'z, z'y, sum y, sum y^2, n
        x = x.to(device)
        z = torch.flatten(without.features(x), 1).double().cpu()
        z = torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64, device=z.device)], 1)
        y = model.fc4(torch.flatten(model.features(x), 1)).double().cpu()
        n = torch.tensor(float(len(y)), device=y.device)
        return z.T @ z, z.T @ y, y.sum(0), (y * y).sum(0), n

    xtx, xty, ysum, yy, n = dist.sharded_sum(sums, images, batch_size=batch_size)
    lam = ridge * torch.diagonal(xtx).mean()
    w = torch.linalg.solve(
        xtx + lam * torch.eye(len(xtx), dtype=torch.float64, device=xtx.device), xty
    )  # [D+1, H]
    without.fc4.weight.copy_(w[:-1].T.float())
    without.fc4.bias.copy_(w[-1].float())
    sse = (yy - 2 * (w * xty).sum(0) + (w * (xtx @ w)).sum(0)).sum()
    sst = (yy - ysum * ysum / n).sum()
    return float(1 - sse / sst)
