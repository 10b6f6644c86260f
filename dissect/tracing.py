"""Watching a real forward pass at the level of torch functions, so that functional code
(``F.relu(x)``, ``x.relu()``, ``F.max_pool2d``) needs no module to hook.

Two modes (:class:`torch.overrides.TorchFunctionMode`):

- :class:`ActivationWatch` finds the non-linearity applied to each conv layer's output (through
  batch norm and dropout, which only rescale it) and captures or zeroes channels of its result.
- :class:`FrozenPath` records the ReLU masks and max-pool choices of one pass and replays them
  on another, which makes the network an affine map of what flows through it: the bias term of
  an exact decomposition is a replayed pass of zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = [
    "ActivationWatch",
    "Zero",
    "zeroed",
    "FrozenPath",
    "NON_AFFINE",
    "function_name",
]

Tensor = torch.Tensor

RELU = {F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}
LEAKY = {F.leaky_relu, F.leaky_relu_}
MAX_POOL = {F.max_pool2d, F.adaptive_max_pool2d}
# Functions that only rescale a conv's output: its activation may come after them.
PASS_THROUGH = {F.batch_norm, F.dropout, F.dropout2d, Tensor.contiguous, Tensor.clone}
# Non-linearities: the first one applied to a conv's output is that conv's activation.
SMOOTH = {
    F.gelu, F.silu, F.elu, F.selu, F.celu, F.softplus, F.mish, F.hardswish, F.hardsigmoid,
    F.hardtanh, F.relu6, F.tanh, F.sigmoid, F.softsign, F.tanhshrink, F.logsigmoid,
    torch.sigmoid, torch.tanh, Tensor.sigmoid, Tensor.tanh,
}  # fmt: skip
NONLINEAR = RELU | LEAKY | SMOOTH
# Where one of these lies between a layer and the class scores, the path is not piecewise
# affine and a decomposition keeps a residual.
NON_AFFINE = SMOOTH | {
    F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm, F.normalize,
    F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, Tensor.softmax,
    Tensor.log_softmax, torch.exp, Tensor.exp, torch.sqrt, Tensor.sqrt, torch.pow, Tensor.pow,
    Tensor.__pow__, torch.matmul, torch.bmm, Tensor.__matmul__, torch.einsum,
}  # fmt: skip


#: channels to zero: a list (the same for every image) or a mask ``[N, C]`` (bool), image by image
Zero = list[int] | Tensor


def zeroed(out: Tensor, which: Zero) -> Tensor:
    """A copy of ``out [N, C, ...]`` with the channels ``which`` names set to zero."""
    if isinstance(which, Tensor):
        mask = which.to(out.device).reshape(*which.shape, *(1,) * (out.dim() - 2))
        return out.masked_fill(mask, 0)
    out = out.clone()
    out[:, which] = 0
    return out


def function_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func))
    if func in MAX_POOL:
        return "max_pool2d"
    return name


class ActivationWatch(TorchFunctionMode):
    """Follows each conv output it is told about (:meth:`watch`) to the first non-linearity
    applied to it; ``found[layer]`` is that function's result (cloned), ``kinds[layer]`` its
    name. ``zero[layer]`` names channels to zero in that result (an ablation after the
    non-linearity; a list, or a mask per image: :data:`Zero`). ``on_found(layer)`` is called
    once a layer's result is kept (it may raise to end the pass early)."""

    def __init__(
        self,
        zero: Mapping[str, Zero] | None = None,
        keep: bool = True,
        on_found: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.zero = zero or {}
        self.keep = keep
        self.on_found = on_found
        self.found: dict[str, Tensor] = {}
        self.kinds: dict[str, str] = {}
        self._chain: dict[int, tuple[str, Tensor]] = {}

    def watch(self, layer: str, output: Tensor) -> None:
        self._chain[id(output)] = (layer, output)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not args or not isinstance(args[0], Tensor) or id(args[0]) not in self._chain:
            return out
        layer, source = self._chain[id(args[0])]
        if source is not args[0] or layer in self.kinds or not isinstance(out, Tensor):
            return out
        if func in NONLINEAR:
            self.kinds[layer] = function_name(func)
            if layer in self.zero:
                out = zeroed(out, self.zero[layer])
            if self.keep:
                self.found[layer] = out.clone()
                if self.on_found is not None:
                    self.on_found(layer)
        elif func in PASS_THROUGH:
            self._chain[id(out)] = (layer, out)
        return out


class FrozenPath(TorchFunctionMode):
    """``record=True``: run normally and keep every ReLU's mask and every max-pool's choices,
    in call order; between :meth:`open` and :meth:`close` note any non-affine function.
    ``record=False`` (with a recording's ``steps``): replay them, so the pass is affine in its
    input: ``relu(x) -> x * mask``, ``max_pool(x) -> x at the recorded positions``."""

    def __init__(self, steps: list[tuple[str, Any]] | None = None) -> None:
        super().__init__()
        self.record = steps is None
        self.steps: list[tuple[str, Any]] = [] if steps is None else steps
        self.non_affine: list[str] = []
        self._at = 0
        self._inside = False

    def open(self) -> None:
        self._inside = True

    def close(self) -> None:
        self._inside = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in RELU or func in LEAKY:
            return self._relu(func, args, kwargs)
        if func in MAX_POOL:
            return self._max_pool(func, args, kwargs)
        if self._inside and (
            func in NON_AFFINE or (func is F.batch_norm and _batch_norm_training(args, kwargs))
        ):
            self.non_affine.append(function_name(func))
        return func(*args, **kwargs)

    def _next(self, kind: str) -> Any:
        if self._at >= len(self.steps) or self.steps[self._at][0] != kind:
            raise RuntimeError("the replayed pass took another path than the recorded one")
        value = self.steps[self._at][1]
        self._at += 1
        return value

    def _relu(self, func: Any, args: tuple, kwargs: dict) -> Tensor:
        x = args[0]
        if func in LEAKY:
            slope = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
        else:
            slope = 0.0
        inplace = func in (F.relu_, torch.relu_, Tensor.relu_, F.leaky_relu_) or bool(
            kwargs.get("inplace", args[2] if func in LEAKY and len(args) > 2 else False)
        )
        if self.record:
            gain = torch.where(x > 0, 1.0, slope).to(x.dtype).detach()
            self.steps.append(("relu", gain))
            return func(*args, **kwargs)
        gain = self._next("relu")
        return x.mul_(gain) if inplace else x * gain

    def _max_pool(self, func: Any, args: tuple, kwargs: dict) -> Any:
        wants_indices = bool(kwargs.pop("return_indices", False))
        if self.record:
            out, idx = func(*args, **kwargs, return_indices=True)
            self.steps.append(("max_pool", idx))
            return (out, idx) if wants_indices else out
        idx = self._next("max_pool")
        x = args[0]
        out = x.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)
        return (out, idx) if wants_indices else out


def _batch_norm_training(args: tuple, kwargs: dict) -> bool:
    if "training" in kwargs:
        return bool(kwargs["training"])
    return bool(args[5]) if len(args) > 5 else False
