"""Weight grids: the first-layer filters, and what each class looks for in a conv layer."""

from __future__ import annotations

import torch
from torch import nn

from dissect.head import score_contributions
from dissect.specimen import Specimen, specimen_of

__all__ = ["first_layer_weights", "class_templates"]


def first_layer_weights(model: nn.Module | Specimen) -> torch.Tensor:
    """``[C, C_in, kh, kw]`` filters of the first conv layer."""
    specimen = specimen_of(model)
    return specimen.conv(specimen.conv_names[0]).weight.detach().cpu()


def class_templates(
    model: nn.Module | Specimen, images: torch.Tensor, layer: str | None = None
) -> torch.Tensor:
    """``[K, C]``: each class's mean contribution from each channel of ``layer`` (default the
    last conv layer) over ``images``, i.e. what each class looks for in each channel."""
    return score_contributions(model, images, layer).contributions.mean(0).float()
