"""The discovery pass: one forward pass of a zero image finds what a model holds (its conv
layers by module path in call order, the module giving the class scores, the non-linearity after
each conv, the output shapes, and the captures the pass later changes in place), so that
:class:`~dissect.specimen.Specimen` can run it with hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dissect.infra.errors import AuditError
from dissect.tracing import ActivationWatch

__all__ = ["Layout", "discover", "is_conv", "as_pair", "centre_map"]


@dataclass
class Layout:
    """What the discovery pass finds in a model (see :func:`discover`)."""

    convs: list[str]
    logits: str
    classes: int
    activations: dict[str, str] = field(default_factory=dict)  # layer -> non-linearity name
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # layer -> output [C, H, W]
    # captures ("L", "L:in") that the pass changes in place later (an in-place ReLU after a conv,
    # ``x += ...``): only these are cloned when captured; the rest are kept as they are
    changed: set[str] = field(default_factory=set)


def discover(model: nn.Module, shape: tuple[int, int, int], logits: str | None = None) -> Layout:
    """One forward pass of a zero image of ``shape`` ``(C, H, W)``: the order of the conv
    layers, the class scores (the last ``nn.Linear`` called, or the module named ``logits``),
    the non-linearity after each conv, and what the pass changes in place."""
    modules = dict(model.named_modules())
    p = next(model.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    seen: dict[str, tuple[torch.Tensor, int]] = {}
    linears: list[tuple[str, torch.Tensor]] = []
    watch = ActivationWatch(keep=False)
    handles = []
    for name, module in modules.items():
        if is_conv(module):

            def hook(m, i, o, name=name):
                if name not in order:
                    order.append(name)
                    shapes[name] = tuple(o.shape[1:])
                    seen[name], seen[f"{name}:in"] = (o, o._version), (i[0], i[0]._version)
                watch.watch(name, o)

            handles.append(module.register_forward_hook(hook))
        if isinstance(module, nn.Linear) or name == logits:
            handles.append(
                module.register_forward_hook(lambda m, i, o, name=name: linears.append((name, o)))
            )
    if not any(is_conv(m) for m in modules.values()):
        raise AuditError(f"{type(model).__name__} has no nn.Conv2d layer: dissect audits ConvNets")
    was_training = model.training
    model.eval()
    batch = (1, *shape)
    try:
        with torch.no_grad(), watch:
            model(torch.zeros(batch, device=device, dtype=dtype))
    except AuditError:
        raise
    except Exception as exc:  # the model's own error, whatever its type
        message = " ".join(str(exc).split())[:300]
        raise AuditError(
            f"the model's forward pass fails on an input of shape {list(batch)}: "
            f"{type(exc).__name__}: {message} (check --input)"
        ) from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    found = [(n, o) for n, o in linears if logits is None or n == logits]
    if not found:
        raise AuditError(
            "no module gives class scores: the model has no nn.Linear; name one with --logits"
            if logits is None
            else f"--logits {logits!r} is never called in the forward pass"
        )
    name, out = found[-1]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise AuditError(
            f"module {name!r} does not give class scores [N, K] (its output is "
            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__})"
        )
    changed = {key for key, (t, version) in seen.items() if t._version != version}
    return Layout(order, name, int(out.shape[1]), dict(watch.kinds), shapes, changed)


def as_pair(value: Any) -> tuple[int, int]:
    """A conv attribute (``stride``, ``dilation``, ``padding``) as ``(rows, columns)``."""
    if isinstance(value, tuple | list):
        return (int(value[0]), int(value[1]))
    return (int(value), int(value))


def centre_map(conv: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((stride_r, stride_c), (offset_r, offset_c))``: output unit (r, c) of ``conv`` is
    centred on input position ``(r * stride + offset)`` (padding ``"same"``: offset 0)."""
    kh, kw = conv.weight.shape[-2:]
    stride, dilation = as_pair(getattr(conv, "stride", 1)), as_pair(getattr(conv, "dilation", 1))
    padding = getattr(conv, "padding", 0)
    if padding == "same":
        return stride, (0, 0)
    pad = as_pair(0 if padding == "valid" else padding)
    return stride, (dilation[0] * (kh - 1) // 2 - pad[0], dilation[1] * (kw - 1) // 2 - pad[1])


def is_conv(module: nn.Module) -> bool:
    """An ``nn.Conv2d``, or a module that computes one from a weight of its own (a 4-D
    ``weight`` with ``stride`` and ``padding``, e.g. a conv whose kernel is generated from a few
    parameters)."""
    if isinstance(module, nn.Conv2d):
        return True
    if any(True for _ in module.children()) or not hasattr(module, "padding"):
        return False
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.dim() == 4 and hasattr(module, "stride")
