"""Redirected ReLU gradients, so that an optimised input can wake a silent network.

Where a ReLU's input is negative everywhere it sees (a hand-built layer with a firing
threshold, a uniform start image), the true gradient through it is exactly zero and gradient
ascent on the input cannot start. :class:`RedirectedRelu` (after Lucid's
``redirected_relu_grad``) leaves every forward value as it is and changes only the backward
pass, image by image: where the true gradient reaching an image through a ReLU is zero, it passes
the incoming gradient wherever it would raise the ReLU's input, and blocks it where it would
push an already negative input lower. Once an image makes the ReLU fire, the true gradient
is used again. It works at the level of torch functions, so module and functional ReLUs alike
are covered without knowing any attribute name.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

REDIRECTED = {F.relu, torch.relu, torch.Tensor.relu}

__all__ = ["RedirectedRelu", "redirected_relu"]


class _Redirect(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mode: RedirectedRelu) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.mode = mode
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        fires = x > 0
        true = torch.where(fires, grad, 0.0)
        rows = len(x) if x.dim() > 1 else 1
        # dead: a gradient arrived but none got through (not: the objective is saturated);
        # any() of a float tensor asks "is any entry non-zero" without a comparison tensor
        dead = grad.reshape(rows, -1).any(1) & ~true.reshape(rows, -1).any(1)
        ctx.mode.note(dead)
        # on a GPU, asking whether any image is dead would wait for it at every step
        if not x.is_cuda and not bool(dead.any()):
            return true, None  # every image has its true gradient: nothing to redirect
        # grad is d(objective)/d(out) of an objective to *maximise*: negative grad lowers x
        redirected = torch.where(~fires & (grad < 0), 0.0, grad)
        shape = (-1,) + (1,) * (x.dim() - 1) if x.dim() > 1 else ()
        return torch.where(dead.reshape(shape), redirected, true), None


class RedirectedRelu(TorchFunctionMode):
    """Inside this mode every ``relu`` (module or functional) of a tensor that needs a gradient
    has the redirected backward (see the module doc). ``fell_back [N]`` (on the CPU, after a
    ``backward``): which images needed the redirected gradient through some ReLU at some step."""

    def __init__(self) -> None:
        super().__init__()
        self._fell_back: torch.Tensor | None = None  # on the images' device until asked for

    @property
    def fell_back(self) -> torch.Tensor | None:
        return None if self._fell_back is None else self._fell_back.cpu()

    def note(self, dead: torch.Tensor) -> None:
        dead = dead.detach()
        if self._fell_back is None:
            self._fell_back = dead.clone()
        elif len(self._fell_back) == len(dead):
            self._fell_back |= dead.to(self._fell_back.device)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        x = args[0] if args else None
        # F.relu(x, inplace=True) (nn.ReLU(inplace=True)) is used for what it returns, so an
        # out-of-place result serves; Tensor.relu_ may be called for its effect: left alone
        if func in REDIRECTED and isinstance(x, torch.Tensor) and x.requires_grad:
            return _Redirect.apply(x, self)
        return func(*args, **(kwargs or {}))


def redirected_relu() -> RedirectedRelu:
    """A fresh :class:`RedirectedRelu` mode, for one optimisation."""
    return RedirectedRelu()
