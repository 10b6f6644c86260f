"""Explain one prediction: the predicted class and its probability, and the last conv layer's
channels that drove its score (exact class-score contributions; the residual is shown where
the path to the scores is not piecewise affine)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dissect.head import score_contributions
from dissect.specimen import Specimen, specimen_of

__all__ = ["Explanation", "explain_prediction"]


@dataclass(frozen=True)
class Explanation:
    predicted: int
    probability: float
    logit: float
    bias: float
    layer: str
    drivers: list[tuple[int, float]]  # (0-based channel, contribution to the predicted logit)
    residual: float = 0.0  # score - bias - sum of contributions (rounding where exact)
    non_affine: tuple[str, ...] = ()
    class_name: str = ""

    def text(self, truth: int | None = None) -> str:
        said = f" (true class {truth})" if truth is not None else ""
        name = (
            f" ({self.class_name})"
            if self.class_name and self.class_name != str(self.predicted)
            else ""
        )
        lines = [
            f"predicted class {self.predicted}{name} with probability {self.probability:.3f}{said}",
            f"score {self.predicted} = {self.logit:.3f} = bias {self.bias:+.3f} + channels of {self.layer}; strongest:",
        ]
        lines += [f"  {self.layer} channel {c + 1}: {v:+.3f}" for c, v in self.drivers]
        if self.non_affine:
            lines.append(
                f"  residual {self.residual:+.3g}: the path to the scores is not piecewise affine "
                f"({', '.join(self.non_affine)})"
            )
        return "\n".join(lines)


@torch.no_grad()
def explain_prediction(
    model: nn.Module | Specimen, image: torch.Tensor, top: int = 5, layer: str | None = None
) -> Explanation:
    """``image [1, C, H, W]`` in [0, 1] -> what the model predicts and which channels of
    ``layer`` (default: the last conv layer) drove it."""
    specimen = specimen_of(model)
    split = score_contributions(specimen, image, layer)
    probs = torch.softmax(split.scores[0], 0).cpu()
    pred = int(probs.argmax())
    drive = split.contributions[0, pred].cpu()
    order = torch.argsort(drive, descending=True)[:top].tolist()
    return Explanation(
        predicted=pred,
        probability=float(probs[pred]),
        logit=float(split.scores[0, pred]),
        bias=float(split.bias[0, pred]),
        layer=split.layer,
        drivers=[(c, float(drive[c])) for c in order],
        residual=float(split.residual[0, pred]),
        non_affine=split.non_affine,
        class_name=specimen.class_names[pred],
    )
