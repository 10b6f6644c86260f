"""The model adapter: any ``nn.Module`` ConvNet under the microscope.

A :class:`Specimen` wraps a model and an :class:`InputSpec` (channels, size, normalisation,
class names). It finds every ``nn.Conv2d`` by its module path (``conv1``, ``features.3``,
``0``), in the order a real forward pass calls them, and the module whose output is the class
scores (the last ``nn.Linear`` called, unless named). :meth:`Specimen.run` makes one real forward
pass of pixel images in [0, 1] and returns what was asked for, captured by forward hooks (so
functional ReLU, pooling, dropout, ``flatten`` and ``view`` need no special case):

- ``"input"``: the pixels; ``"<layer>:in"``: what the conv reads; ``"<layer>"``: what it
  writes (before its non-linearity); ``"<layer>:post"``: the result of the first non-linearity
  applied to it (see :mod:`dissect.tracing`; the conv output itself where none follows);
- ``"logits"``: the class scores; ``"log_softmax"``: their log-probabilities.

Captured tensors are what the pass made, cloned where the pass later changes them in place (an
in-place ReLU after a conv, ``x += ...``; found in the discovery pass): a capture never changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import torch
from torch import nn

from dissect.infra.errors import AuditError
from dissect.layout import as_pair, discover, is_conv
from dissect.tracing import ActivationWatch, Zero, zeroed

__all__ = ["InputSpec", "Specimen", "ConvLike", "specimen_of", "is_conv", "as_pair", "Acts"]

Acts = dict[str, torch.Tensor]


@dataclass(frozen=True)
class InputSpec:
    """What the model reads: ``channels x height x width`` images; pixels in [0, 1] are
    normalised per channel as ``(x - mean) / std`` before the model sees them (the identity by
    default, for models that normalise by themselves)."""

    channels: int = 1
    height: int = 28
    width: int = 28
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) == 1:
                values = values * self.channels
            if len(values) != self.channels:
                raise AuditError(
                    f"{name} has {len(values)} values for {self.channels} input channels: "
                    "give one value, or one per channel"
                )
            object.__setattr__(self, name, values)
        if min(self.std) <= 0:
            raise AuditError(f"std must be positive, got {self.std}")
        if min(self.channels, self.height, self.width) < 1:
            raise AuditError(f"input shape must be positive, got {self.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device)
        return (pixels - mean[:, None, None]) / std[:, None, None]


class ConvLike(Protocol):
    """What dissect reads of a conv layer: an ``nn.Conv2d`` or a module like one."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


class _Stop(Exception):
    """Raised by a hook once everything asked for is captured: the rest of the pass is skipped."""


class Specimen:
    """``model`` (any ``nn.Module`` taking ``[N, C, H, W]``) with its input spec; ``logits``
    names the module whose output is the class scores (default: the last ``nn.Linear``)."""

    def __init__(
        self, model: nn.Module, spec: InputSpec | None = None, logits: str | None = None
    ) -> None:
        self.model = model
        self.spec = spec or InputSpec()
        self.modules = dict(model.named_modules())
        if logits is not None and logits not in self.modules:
            raise AuditError(
                f"--logits {logits!r}: the model has no module of that name "
                f"(modules: {', '.join(n for n in self.modules if n)[:300]})"
            )
        self._layout = discover(model, self.spec.shape, logits)
        names = self.spec.classes or tuple(str(k) for k in range(self._layout.classes))
        if len(names) != self._layout.classes:
            raise AuditError(
                f"{len(names)} class names given but the model has {self._layout.classes} class scores"
            )
        self.class_names: tuple[str, ...] = tuple(names)

    # -- what the model holds ------------------------------------------------------------------
    @property
    def conv_names(self) -> list[str]:
        """Conv layers by module path, in the order the forward pass calls them."""
        return list(self._layout.convs)

    @property
    def logits_name(self) -> str:
        return self._layout.logits

    @property
    def num_classes(self) -> int:
        return self._layout.classes

    @property
    def activations(self) -> dict[str, str]:
        """The non-linearity that follows each conv layer (absent where none does)."""
        return dict(self._layout.activations)

    def output_shape(self, layer: str) -> tuple[int, ...]:
        """``(C, H, W)`` that conv ``layer`` writes for one input of the spec's shape."""
        self.check_layer(layer)
        return self._layout.shapes[layer]

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.model.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def check_layer(self, layer: str) -> int:
        """0-based position of conv ``layer``; a bad name is one error listing the conv layers."""
        if layer not in self._layout.convs:
            kind = type(self.modules[layer]).__name__ if layer in self.modules else None
            what = (
                f"{layer!r} is a {kind}, not a conv layer" if kind else f"no conv layer {layer!r}"
            )
            raise AuditError(
                f"{what} in this model: valid layers are {', '.join(self._layout.convs)}"
            )
        return self._layout.convs.index(layer)

    def conv(self, layer: str) -> ConvLike:
        """The conv module at ``layer`` (an ``nn.Conv2d`` or a module like one, see
        :func:`is_conv`)."""
        self.check_layer(layer)
        return cast(ConvLike, self.modules[layer])

    def previous(self, layer: str) -> str | None:
        """The conv layer called before ``layer`` (None for the first)."""
        i = self.check_layer(layer)
        return self._layout.convs[i - 1] if i > 0 else None

    # -- running it ----------------------------------------------------------------------------
    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        """Check pixel images ``[N, C, H, W]`` against the spec; on the model's device/dtype."""
        if pixels.dim() != 4 or tuple(pixels.shape[1:]) != self.spec.shape:
            raise AuditError(
                f"images of shape {tuple(pixels.shape)} do not fit the model's input "
                f"{self.spec.shape}: give [N, {', '.join(map(str, self.spec.shape))}] pixels in [0, 1]"
            )
        return pixels.to(device=self.device, dtype=self.dtype)

    def run(
        self,
        pixels: torch.Tensor,
        needs: Iterable[str],
        *,
        zero: Mapping[str, Zero] | None = None,
        hooks: dict[str, Any] | None = None,
    ) -> Acts:
        """One forward pass of ``pixels [N, C, H, W]`` in [0, 1]; returns the activations named
        in ``needs`` (see the module doc). ``zero``: channels to zero after each named conv
        layer's non-linearity (an ablation; a list of channels, or a mask ``[N, C]`` per image).
        ``hooks``: extra forward hooks by module path that may replace a module's output. Stops
        early when nothing later is needed."""
        needs = set(needs)
        x = self.prepare(pixels)
        acts: Acts = {"input": x} if "input" in needs else {}
        want_scores = bool(needs & {"logits", "log_softmax", "output"})
        layers = {n.split(":")[0] for n in needs} & set(self._layout.convs)
        last = max((self._layout.convs.index(n) for n in layers), default=-1)
        zero = zero or {}
        posts = {n for n in layers if f"{n}:post" in needs}
        remaining = {n for n in needs if n.split(":")[0] in layers}

        def found(layer: str) -> None:
            # every post-activation asked for is kept and nothing later is needed: stop here
            if (
                not want_scores
                and posts <= watch.found.keys()
                and remaining <= {f"{n}:post" for n in posts}
            ):
                raise _Stop

        watch = ActivationWatch(
            zero={n: c for n, c in zero.items() if n in self._layout.activations},
            keep=bool(posts),
            on_found=found,
        )

        def conv_hook(name: str):
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor):
                if name in zero and name not in self._layout.activations:
                    output = zeroed(output, zero[name])
                if name in hooks_:
                    replaced = hooks_[name](module, inputs, output)
                    output = output if replaced is None else replaced
                if f"{name}:in" in needs:
                    acts[f"{name}:in"] = self._keep(f"{name}:in", inputs[0])
                    remaining.discard(f"{name}:in")
                if name in needs:
                    acts[name] = self._keep(name, output)
                    remaining.discard(name)
                watch.watch(name, output)
                return output

            return hook

        hooks_ = dict(hooks or {})
        handles = [self.modules[n].register_forward_hook(conv_hook(n)) for n in self._layout.convs]
        for name, fn in hooks_.items():
            if name not in self._layout.convs:
                handles.append(self.modules[name].register_forward_hook(fn))
        if want_scores:

            def scores_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                acts["logits"] = output

            handles.append(self.modules[self._layout.logits].register_forward_hook(scores_hook))
        elif last >= 0 and not any(n.endswith(":post") for n in remaining):
            stop_at = self._layout.convs[last]
            handles.append(self.modules[stop_at].register_forward_hook(_stop_when(remaining)))
        try:
            with watch:
                out = self.model(self.spec.normalize(x))
            acts["output"] = out
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        for name in layers:
            if f"{name}:post" in needs:
                acts[f"{name}:post"] = watch.found[name] if name in watch.found else acts[name]
        if "log_softmax" in needs:
            acts["log_softmax"] = torch.log_softmax(acts["logits"], 1)
        return acts

    def _keep(self, key: str, t: torch.Tensor) -> torch.Tensor:
        return t.clone() if key in self._layout.changed else t

    def scores(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class scores ``[N, K]`` (the logits module's output)."""
        return self.run(pixels, {"logits"})["logits"]

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.scores(pixels)


def _stop_when(remaining: set[str]):
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not remaining:
            raise _Stop

    return hook


def specimen_of(model: nn.Module | Specimen, spec: InputSpec | None = None) -> Specimen:
    """The specimen of ``model``: itself if it is one; else ``model`` with ``spec``, or with the
    spec the model declares (``model.input_spec``), or 1x28x28 pixels fed as they are (the
    suite's own networks normalise their input themselves)."""
    if isinstance(model, Specimen):
        return model
    return Specimen(model, spec or getattr(model, "input_spec", None))
