"""Class scores split per channel of a conv layer, exactly where the path is piecewise affine.

From a conv layer's output ``z`` to the class scores, a network of ReLUs, max-pooling,
eval-mode dropout and batch norm, average pooling, flatten/view, linear layers, residual
additions and concatenation is affine inside each input's linear region: with the ReLU masks and
max-pool choices of the real pass frozen, ``score = J z + b``. Per image, the contribution of
channel ``c`` to class ``k`` is ``sum over positions of (d score_k / d z) * z`` (gradient times
activation), and the bias term ``b`` is computed on its own: a forward pass of zeros through the
path with the frozen masks (:class:`~dissect.tracing.FrozenPath`), never as a remainder. So
``score - sum_c contribution - b`` is a real check; where a function on the path is not
piecewise affine (GELU, softmax, layer norm, train-mode batch norm...), it is named and the
residual is kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from dissect.infra import distributed as dist
from dissect.specimen import Specimen, specimen_of
from dissect.tracing import FrozenPath

__all__ = ["ScoreSplit", "score_contributions", "head_contributions", "class_drivers"]


@dataclass(frozen=True)
class ScoreSplit:
    """``contributions [N, K, C]``, ``bias [N, K]``, ``scores [N, K]`` (float64) of ``layer``;
    ``non_affine`` names the functions on the path that are not piecewise affine."""

    layer: str
    contributions: torch.Tensor
    bias: torch.Tensor
    scores: torch.Tensor
    non_affine: tuple[str, ...]

    @property
    def residual(self) -> torch.Tensor:
        """``scores - contributions.sum(2) - bias`` ``[N, K]``: zero up to rounding when exact."""
        return self.scores - self.contributions.sum(2) - self.bias

    @property
    def relative_error(self) -> float:
        """Largest ``|residual| / (sum |c| + |b|)`` over images and classes."""
        scale = self.contributions.abs().sum(2) + self.bias.abs()
        return float((self.residual.abs() / scale.clamp(min=1e-30)).max())


def _float64(specimen: Specimen) -> Specimen:
    if specimen.dtype == torch.float64:
        return specimen
    model = copy.deepcopy(specimen.model).to(torch.float64)
    return Specimen(model, specimen.spec, specimen.logits_name)


def score_contributions(
    model: nn.Module | Specimen, images: torch.Tensor, layer: str | None = None
) -> ScoreSplit:
    """Split the class scores of pixel ``images [N, C, H, W]`` per channel of conv ``layer``
    (default: the last conv layer), in float64."""
    specimen = _float64(specimen_of(model))
    layer = layer or specimen.conv_names[-1]
    specimen.check_layer(layer)
    held: dict[str, torch.Tensor] = {}
    recorder = FrozenPath()

    def leaf(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        held["z"] = output.detach().requires_grad_(True)
        recorder.open()
        return held["z"] * 1  # not a leaf, so an in-place ReLU after the conv stays legal

    def close(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        recorder.close()

    hooks = {layer: leaf, specimen.logits_name: close}
    with torch.enable_grad(), recorder:
        scores = specimen.run(images, {"logits"}, hooks=hooks)["logits"]
        z = held["z"]
        per_class = []
        for k in range(scores.shape[1]):
            (grad,) = torch.autograd.grad(
                scores[:, k].sum(), z, retain_graph=True, allow_unused=True
            )
            per_class.append((grad * z).sum((2, 3)) if grad is not None else z.sum((2, 3)) * 0)
    contributions = torch.stack(per_class, 1).detach()

    def zeros(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(output)

    with torch.no_grad(), FrozenPath(recorder.steps):
        bias = specimen.run(images, {"logits"}, hooks={layer: zeros})["logits"]
    return ScoreSplit(
        layer,
        contributions,
        bias.detach(),
        scores.detach(),
        tuple(dict.fromkeys(recorder.non_affine)),
    )


def head_contributions(
    model: nn.Module | Specimen, x: torch.Tensor, layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(contrib [N, K, C], bias [N, K])`` with ``contrib.sum(2) + bias`` equal to the class
    scores of pixel images ``x`` (see :func:`score_contributions`)."""
    split = score_contributions(model, x, layer)
    return split.contributions, split.bias


@torch.no_grad()
def class_drivers(
    model: nn.Module | Specimen,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 500,
    layer: str | None = None,
) -> pd.DataFrame:
    """Which channels of ``layer`` (default: the last conv layer) drive class k: mean
    contribution of each channel to the score of class k over the images of class k (this
    rank's shard, summed across ranks).

    Columns: class, channel (1-based), mean_contribution, share (of the class's positive total),
    rank (1 = drives the class most)."""
    specimen = specimen_of(model)
    k = specimen.num_classes

    def sums(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        contrib = score_contributions(specimen, x, layer).contributions.cpu()
        own = contrib[torch.arange(len(y), device=contrib.device), y]  # [n, C]
        per_class = torch.zeros(k, own.shape[1], dtype=torch.float64, device=own.device).index_add_(
            0, y, own
        )
        return torch.cat([per_class, torch.bincount(y, minlength=k).double()[:, None]], 1)

    total = dist.sharded_sum(sums, images, labels, batch_size=batch_size)
    mean = total[:, :-1] / total[:, -1:].clamp(min=1)
    rows = []
    for c_k, row in enumerate(mean):
        positive = float(row.clamp(min=0).sum()) or 1.0
        order = torch.argsort(row, descending=True)
        for rank, c in enumerate(order.tolist(), start=1):
            rows.append({"class": c_k, "channel": c + 1, "mean_contribution": float(row[c]),
                         "share": float(row[c]) / positive, "rank": rank})  # fmt: skip
    return pd.DataFrame(rows)
