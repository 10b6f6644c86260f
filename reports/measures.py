"""Small measurements the overview table needs: sizes, conv FLOPs, test-set predictions."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from dissect.specimen import ConvLike, specimen_of
from simpleconvnet.model import SimpleConvNet

__all__ = ["parameter_count", "conv_macs", "predictions"]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_macs(model: SimpleConvNet, image_size: int = 28) -> int:
    """Multiply-accumulates of the conv layers (``model.conv_names``, hand-built ones included)
    for one ``[1, 1, S, S]`` input."""
    total = 0

    def counter(conv: ConvLike) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def count(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            nonlocal total
            total += output.numel() * conv.weight[0].numel()  # C_in/groups * kh * kw per output

        return count

    specimen = specimen_of(model)
    handles = [
        specimen.modules[name].register_forward_hook(counter(specimen.conv(name)))
        for name in model.conv_names
    ]
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, 1, image_size, image_size, device=device))
    finally:
        for h in handles:
            h.remove()
    return total


def predictions(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> pd.DataFrame:
    """One row per test image: ``index, label, pred, confidence`` and ``p0..p9``.

    ``images: [N, 1, 28, 28]`` in [0, 1]; ``confidence`` is the probability of ``pred``.
    """
    from dissect.mistakes import probabilities

    probs = probabilities(model, images)
    conf, pred = probs.max(1)
    frame = pd.DataFrame(
        {
            "index": range(len(labels)),
            "label": labels.cpu().numpy(),
            "pred": pred.numpy(),
            "confidence": conf.numpy(),
        }
    )
    for k in range(probs.shape[1]):
        frame[f"p{k}"] = probs[:, k].numpy()
    return frame
