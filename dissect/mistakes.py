"""Confusion matrix with the most confident examples of each cell, and the most confident
mistakes."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from dissect.specimen import Specimen, specimen_of

__all__ = ["probabilities", "predictions", "confusion_examples", "confident_mistakes"]


@torch.no_grad()
def probabilities(
    model: nn.Module | Specimen, images: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Class probabilities ``[N, K]`` (softmax of the class scores) of pixel images
    ``[N, C, H, W]`` (model in eval mode)."""
    specimen = specimen_of(model)
    specimen.model.eval()
    parts = [
        specimen.run(images[s : s + batch_size], {"log_softmax"})["log_softmax"].exp().cpu()
        for s in range(0, len(images), batch_size)
    ]
    return torch.cat(parts)


def predictions(
    model: nn.Module | Specimen, images: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predicted class [N], its probability [N])``."""
    conf, pred = probabilities(model, images, batch_size).max(1)
    return pred, conf


def confusion_examples(
    model: nn.Module | Specimen, images: torch.Tensor, labels: torch.Tensor, per_cell: int = 3
) -> pd.DataFrame:
    """For every (true, predicted) cell with images in it: the count and the indices (0-based,
    into ``images``) of its ``per_cell`` most confident examples, most confident first."""
    pred, prob = predictions(model, images)
    rows = []
    k = specimen_of(model).num_classes
    for t in range(k):
        for p in range(k):
            members = torch.nonzero((labels == t) & (pred == p)).flatten()
            if len(members) == 0:
                continue
            top = members[torch.argsort(prob[members], descending=True)[:per_cell]]
            rows.append({"true": t, "predicted": p, "count": len(members), "examples": top.tolist(),
                         "confidence": [round(float(prob[i]), 4) for i in top]})  # fmt: skip
    return pd.DataFrame(rows)


def confident_mistakes(
    model: nn.Module | Specimen, images: torch.Tensor, labels: torch.Tensor, n: int = 16
) -> pd.DataFrame:
    """The ``n`` wrong predictions the model was surest of: index, true, predicted, confidence."""
    pred, prob = predictions(model, images)
    wrong = torch.nonzero(pred != labels).flatten()
    top = wrong[torch.argsort(prob[wrong], descending=True)[:n]]
    return pd.DataFrame({"index": top.tolist(), "true": labels[top].tolist(), "predicted": pred[top].tolist(),
                         "confidence": prob[top].tolist()})  # fmt: skip
