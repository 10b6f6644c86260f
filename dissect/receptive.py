"""Receptive fields of every conv layer: which input pixels one output unit can see.

Measured, not derived from module attributes, so functional pooling and any layout work: the
model runs once with every conv and linear weight replaced by ones and no bias, ReLUs as the
identity, max-pooling as average pooling of the same window and batch norm skipped
(:class:`_Linearised`); the gradient of one output unit of a layer then covers exactly the
pixels it depends on.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from dissect.specimen import Specimen, specimen_of
from dissect.tracing import MAX_POOL, NONLINEAR

__all__ = ["receptive_fields"]


class _Linearised(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is F.conv2d:
            x, w = args[0], args[1]
            rest = list(args[3:])
            kwargs.pop("bias", None)
            return func(x, torch.ones_like(w), None, *rest, **kwargs)
        if func is F.linear:
            return func(args[0], torch.ones_like(args[1]))
        if func in NONLINEAR or func is F.batch_norm or func in (F.dropout, F.dropout2d):
            return args[0]
        if func is F.max_pool2d:
            return _avg_window(args, kwargs)
        if func in MAX_POOL:
            return F.adaptive_avg_pool2d(
                args[0], args[1] if len(args) > 1 else kwargs["output_size"]
            )
        return func(*args, **kwargs)


def _avg_window(args: tuple, kwargs: dict) -> torch.Tensor:
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
    given = dict(zip(names, args, strict=False)) | kwargs
    kernel = given["kernel_size"]
    return F.avg_pool2d(
        given["input"], kernel, given.get("stride") or kernel, given.get("padding", 0),
        given.get("ceil_mode", False), count_include_pad=True,
    )  # fmt: skip


def receptive_fields(model: nn.Module | Specimen) -> pd.DataFrame:
    """One row per conv layer: its output size, and the receptive field (height and width in
    input pixels) of its central output unit."""
    specimen = specimen_of(model)
    rows = []
    for layer in specimen.conv_names:
        x = torch.zeros(1, *specimen.spec.shape, device=specimen.device, dtype=specimen.dtype)
        x.requires_grad_(True)
        held: dict[str, torch.Tensor] = {}

        def keep(module: nn.Module, inputs: tuple, output: torch.Tensor, held=held) -> None:
            held["out"] = output

        with torch.enable_grad(), _Linearised():
            specimen.run(x, {layer}, hooks={layer: keep})
            out = held["out"]
            h, w = out.shape[2] // 2, out.shape[3] // 2
            (grad,) = torch.autograd.grad(out[0, :, h, w].sum(), x)
        seen = torch.nonzero(grad[0].abs().sum(0) > 0)
        size = (seen.max(0).values - seen.min(0).values + 1).tolist() if len(seen) else [0, 0]
        rows.append({"layer": layer, "output": f"{out.shape[2]}x{out.shape[3]}",
                     "rf_height": int(size[0]), "rf_width": int(size[1])})  # fmt: skip
    return pd.DataFrame(rows)
