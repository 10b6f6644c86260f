"""A CPU-only guard against tensors created without an explicit device.

On a GPU, a tensor the suite creates with ``torch.zeros(...)`` and no ``device=`` lands on the CPU
and crashes the first time it meets the model's outputs (the HandNet head did exactly that). On
the CPU every tensor is on the CPU, so such a bug cannot show. :func:`explicit_devices` makes it
show: while it is active, a tensor factory (``torch.zeros``, ``ones``, ``empty``, ``full``,
``arange``, ``tensor``, ``as_tensor`` on data that is not already a tensor, ``randn``, ``rand``,
``randint``, ``randperm``, ``eye``, ``linspace``, ...) called *from the suite's own code*
(dissect, simpleconvnet, handnet, reports) without ``device=`` raises :class:`AssertionError`
naming the call site.

This is the equivalent of running under ``torch.set_default_device("meta")`` without its two
drawbacks: torch's own code (``nn.Module`` construction, optimisers, data loaders, which create
their tensors on the CPU and are moved with ``.to(device)`` as designed) is not flagged, and the
run still computes real numbers, so the test can check that every stage completes.

Design:

- a :class:`torch.overrides.TorchFunctionMode` sees every call to a torch function, the factories
  included (it is the mechanism ``set_default_device`` itself uses); the set of factories is the
  one ``set_default_device`` affects, named here explicitly.
- only the *direct* caller counts: the first Python frame outside this file and torch's
  dispatch machinery (``torch/overrides.py``, ``torch/utils/_device.py``). A factory called by
  ``torch.nn.Linear.__init__`` has torch as its direct caller and passes, even when the
  ``nn.Linear`` was built by the suite.
- the caller belongs to the suite when its ``co_filename`` lies under one of the four packages'
  folders (taken from the imported packages' ``__path__``, so any checkout works).
- a module's own state is exempt: a factory called in the ``__init__`` of an ``nn.Module``
  (or in a helper defined inside that ``__init__``) makes a parameter or buffer, which is
  created where torch creates ``nn.Linear``'s (the default device) and moved with the module by
  ``.to(device)``. Naming ``device="cpu"`` there would be wrong under a default-device context
  (``with torch.device(...)``). What this leaves unseen: a plain tensor attribute set in
  ``__init__`` (neither parameter nor buffer), which ``.to()`` would not move.
- ``device=None`` counts as missing (it means "the default device", which is the bug).
- ``torch.as_tensor(t)`` with a tensor ``t`` keeps ``t``'s device (nothing is created), so it
  passes; from a list or a NumPy array it creates a CPU tensor and needs ``device=`` like
  ``torch.tensor``. ``torch.from_numpy`` takes no device (it is a view of NumPy memory, on the
  CPU by definition and by name), so it is not a factory here; ``torch.Generator()`` is a class,
  not a torch function, and no mode sees it. ``Tensor.new_*`` and ``*_like`` inherit the device
  of their tensor and are not factories.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

SUITE_PACKAGES = ("dissect", "simpleconvnet", "handnet", "reports")

_FACTORY_NAMES = (
    "arange", "as_tensor", "asarray", "empty", "empty_permuted", "empty_strided", "eye", "full",
    "linspace", "logspace", "ones", "rand", "randint", "randn", "randperm", "range",
    "scalar_tensor", "sparse_coo_tensor", "tensor", "tril_indices", "triu_indices", "zeros",
    "bartlett_window", "blackman_window", "hamming_window", "hann_window", "kaiser_window",
)  # fmt: skip


def _factories() -> frozenset[Callable[..., Any]]:
    found = {getattr(torch, name) for name in _FACTORY_NAMES if hasattr(torch, name)}
    found |= {torch.fft.fftfreq, torch.fft.rfftfreq}
    return frozenset(found)


FACTORIES = _factories()
# torch.as_tensor/asarray on a tensor create nothing: the result keeps the tensor's device
_PASS_THROUGH_ON_TENSOR = frozenset({torch.as_tensor, torch.asarray})


def _folder(path: str) -> str:
    return os.path.normcase(os.path.realpath(path)) + os.sep


_TORCH_DISPATCH = tuple(
    _folder(os.path.dirname(torch.__file__)) + rel
    for rel in ("overrides.py", os.path.join("utils", "_device.py"))
)
_THIS_FILE = os.path.normcase(os.path.realpath(__file__))


def _suite_roots() -> tuple[str, ...]:
    import importlib

    roots: list[str] = []
    for name in SUITE_PACKAGES:
        roots.extend(_folder(p) for p in importlib.import_module(name).__path__)
    return tuple(roots)


@functools.cache
def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _direct_caller(depth: int) -> FrameType | None:
    """The first frame outside this file and torch's dispatch machinery."""
    frame: FrameType | None = sys._getframe(depth + 1)
    while frame is not None:
        path = _real(frame.f_code.co_filename)
        if path != _THIS_FILE and not path.startswith(_TORCH_DISPATCH):
            return frame
        frame = frame.f_back
    return None


def _builds_module_state(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs the ``__init__`` of an ``nn.Module``, or a function defined inside
    one (``GaborConv2d.__init__.<locals>.param``) called from it."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__init__":
            return isinstance(frame.f_locals.get("self"), nn.Module)
        if ".__init__.<locals>." not in getattr(code, "co_qualname", ""):
            return False
        frame = frame.f_back
    return False


class ExplicitDeviceMode(TorchFunctionMode):
    """Record, and raise on, a tensor factory called by the suite's code without ``device=``.

    Every offending call site is also kept, once, in :attr:`violations`, so that one swallowed
    by a broad ``except`` in the code under test still fails the test; :attr:`checked` counts
    the factory calls from the suite that passed, which shows the guard was live."""

    def __init__(self, roots: tuple[str, ...], raise_on_violation: bool = True) -> None:
        super().__init__()
        self.roots = roots
        self.raise_on_violation = raise_on_violation
        self.violations: list[str] = []
        self.checked = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES:
            frame = _direct_caller(1)
            path = _real(frame.f_code.co_filename) if frame is not None else "<unknown>"
            if frame is not None and path.startswith(self.roots):
                if kwargs.get("device") is not None or self._inherits_device(func, args):
                    self.checked += 1
                elif not _builds_module_state(frame):
                    message = (
                        f"torch.{func.__name__}(...) without device= at {path}:{frame.f_lineno} "
                        f"(in {frame.f_code.co_name}): on a GPU this tensor would be on the CPU"
                    )
                    if message not in self.violations:
                        self.violations.append(message)
                    if self.raise_on_violation:
                        raise AssertionError(message)
        return func(*args, **kwargs)

    @staticmethod
    def _inherits_device(func: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        if func not in _PASS_THROUGH_ON_TENSOR:
            return False
        # as_tensor(data, dtype, device): a positional device; or a tensor, which keeps its own
        return len(args) >= 3 and args[2] is not None or bool(args) and torch.is_tensor(args[0])


@contextmanager
def explicit_devices(raise_on_violation: bool = True) -> Iterator[ExplicitDeviceMode]:
    """While active, the suite's tensor factories must name their device (see the module)."""
    with ExplicitDeviceMode(_suite_roots(), raise_on_violation) as mode:
        yield mode
