"""Evaluation of any model of the suite's shape: accuracy, per-class accuracy, mean loss and
the confusion matrix, over a whole split (sharded across ranks under ``torchrun``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dissect.infra import distributed as dist

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    per_class: list[float]
    confusion: pd.DataFrame  # rows: true class, columns: predicted class (counts)

    def metrics(self) -> dict[str, Any]:
        return {"test_loss": self.loss, "test_accuracy": self.accuracy, "per_class": self.per_class}


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> EvalResult:
    """Accuracy, per-class accuracy, mean loss and confusion matrix on ``images [N,1,28,28]``.

    Each rank evaluates its shard; counts are summed across ranks, so the figures are those of
    the whole set.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    classes = int(cast(nn.Linear, model.get_submodule("fc5")).out_features)  # the suite's head
    # counts on the CPU, where the .cpu() batch results are added; CPU indices index any device
    confusion = torch.zeros(classes, classes, dtype=torch.int64, device="cpu")
    loss_sum = torch.zeros((), dtype=torch.float64, device="cpu")
    idx = torch.arange(dist.rank(), len(images), dist.world_size(), device="cpu")
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        x, y = images[part].to(device), labels[part].to(device)
        out = model(x)
        loss_sum += F.nll_loss(out, y, reduction="sum").double().cpu()
        pred = out.argmax(1)
        confusion += torch.bincount(
            (y * classes + pred).cpu(), minlength=classes * classes
        ).reshape(classes, classes)
    confusion = dist.all_reduce_sum(confusion)
    loss_sum = dist.all_reduce_sum(loss_sum)
    model.train(was_training)
    total = int(confusion.sum())
    per_class = (confusion.diag().double() / confusion.sum(1).clamp(min=1).double()).tolist()
    names = [str(k) for k in range(classes)]
    frame = pd.DataFrame(confusion.numpy(), index=names, columns=names)
    frame.index.name, frame.columns.name = "true", "predicted"
    return EvalResult(
        loss=float(loss_sum) / max(total, 1),
        accuracy=float(confusion.diag().sum()) / max(total, 1),
        per_class=per_class,
        confusion=frame,
    )
