"""Explain one prediction: the predicted class and its probability, and the last conv block's
channels that drove its logit (exact head contributions)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dissect.head import head_contributions

__all__ = ["Explanation", "explain_prediction"]


@dataclass(frozen=True)
class Explanation:
    predicted: int
    probability: float
    logit: float
    bias: float
    layer: str
    drivers: list[tuple[int, float]]  # (0-based channel, contribution to the predicted logit)

    def text(self, truth: int | None = None) -> str:
        said = f" (true class {truth})" if truth is not None else ""
        lines = [
            f"predicted class {self.predicted} with probability {self.probability:.3f}{said}",
            f"logit {self.predicted} = {self.logit:.3f} = bias {self.bias:+.3f} + channels of {self.layer}; strongest:",
        ]
        lines += [f"  {self.layer} channel {c + 1}: {v:+.3f}" for c, v in self.drivers]
        return "\n".join(lines)


@torch.no_grad()
def explain_prediction(model: nn.Module, image: torch.Tensor, top: int = 5) -> Explanation:
    """``image [1, 1, 28, 28]`` in [0, 1] -> what the model predicts and which channels drove it."""
    image = image.to(next(model.parameters()).device)
    probs = model(image).exp()[0].cpu()
    contrib, bias = head_contributions(model, image)
    pred = int(probs.argmax())
    drive = contrib[0, pred].cpu()
    order = torch.argsort(drive, descending=True)[:top].tolist()
    return Explanation(
        predicted=pred,
        probability=float(probs[pred]),
        logit=float(drive.sum() + bias[pred]),
        bias=float(bias[pred]),
        layer=model.conv_names[-1],
        drivers=[(c, float(drive[c])) for c in order],
    )
