"""Weight grids: the first-layer filters, and the per-class templates of the linear head."""

from __future__ import annotations

import torch
from torch import nn

from dissect.head import head_matrix

__all__ = ["first_layer_weights", "class_templates"]


def first_layer_weights(model: nn.Module) -> torch.Tensor:
    """``[C, 1, k, k]`` filters of the first conv layer."""
    return getattr(model, model.conv_names[0]).weight.detach().cpu()


@torch.no_grad()
def class_templates(model: nn.Module) -> torch.Tensor:
    """``[K, C, h, w]``: the linear head (fc5 @ fc4) reshaped to (class, channel, position) of
    the last conv block's output, i.e. what each class looks for in each channel."""
    z = model.features(torch.zeros(1, 1, 28, 28, device=next(model.parameters()).device))
    w, _ = head_matrix(model, z.shape[1])
    return w.reshape(w.shape[0], z.shape[1], z.shape[2], z.shape[3]).cpu()
