"""Hand-constructed conv layers whose every parameter has a meaning.

- :class:`GaborConv2d`: each outer channel is one Gabor kernel; its parameters (orientation,
  wavelength, phase, envelope width, aspect, gain, bias) are the layer's only parameters.
- :class:`RuleConv2d`: each outer channel is a written :class:`Rule` over the inner channels:
  which ones it reinforces (+) and which it negates (-), each through an oriented Gaussian
  spatial profile (orientation, length, width, offset). The structure (which inner channel, which
  sign) is fixed; strengths and profile shapes are learnable.

Both expose ``.weight`` ``[O, I, k, k]`` (computed from the parameters), ``.bias`` ``[O]``,
``.padding``, ``.stride`` and ``descriptions`` (one string per outer channel), like
``nn.Conv2d`` plus descriptions, so ``dissect`` treats them as any conv layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dissect.gabor import gabor_kernel
from dissect.terms import TERM_LENGTH, TERM_WIDTH, spatial_profile
from handnet.filters import GaborSpec, describe_gabor

__all__ = ["GaborConv2d", "RuleConv2d", "Rule", "Term", "spatial_profile"]


class GaborConv2d(nn.Module):
    """``x: [N, 1, H, W] -> [N, C, H, W]``; channel ``c`` correlates with the zero-mean (when
    ``zero_mean``) Gabor kernel of ``specs[c]`` times its gain, plus its bias."""

    def __init__(
        self, specs: Sequence[GaborSpec], kernel_size: int = 5, zero_mean: bool = True
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = (kernel_size // 2, kernel_size // 2)
        self.stride = (1, 1)
        self.in_channels, self.out_channels = 1, len(specs)
        self.zero_mean = zero_mean

        def param(values: list[float]) -> nn.Parameter:
            return nn.Parameter(torch.tensor(values, dtype=torch.float32))

        # Stored in units where Adam's step sizes are sensible: radians and logarithms; the
        # kernel (and every spec read back) takes degrees, converted in `weight` and `specs`.
        self.orientation = param([math.radians(s.orientation) for s in specs])
        self.log_wavelength = param([math.log(s.wavelength) for s in specs])
        self.phase = param([math.radians(s.phase) for s in specs])
        self.log_sigma = param([math.log(s.sigma) for s in specs])
        self.log_aspect = param([math.log(s.aspect) for s in specs])
        self.gain = param([s.gain for s in specs])
        self.bias = param([s.bias for s in specs])

    @property
    def weight(self) -> torch.Tensor:
        """``[C, 1, k, k]`` kernels generated from the parameters."""
        k = gabor_kernel(
            self.kernel_size, torch.rad2deg(self.orientation), self.log_wavelength.exp(),
            torch.rad2deg(self.phase), self.log_sigma.exp(), self.log_aspect.exp(),
        )  # fmt: skip
        if self.zero_mean:
            k = k - k.mean(dim=(-2, -1), keepdim=True)
        return (self.gain[:, None, None] * k)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    @property
    def specs(self) -> list[GaborSpec]:
        """The current parameters in degrees and pixels, one :class:`GaborSpec` per channel."""
        rows = zip(
            torch.rad2deg(self.orientation).tolist(), self.log_wavelength.exp().tolist(),
            torch.rad2deg(self.phase).tolist(), self.log_sigma.exp().tolist(),
            self.log_aspect.exp().tolist(), self.gain.tolist(), self.bias.tolist(), strict=True,
        )  # fmt: skip
        return [GaborSpec(o % 180.0 if abs(p) < 1e-9 else o, w, p, s, a, g, b)
                for o, w, p, s, a, g, b in rows]  # fmt: skip

    @property
    def descriptions(self) -> list[str]:
        """What each channel detects, from its current orientation and phase (and gain sign)."""
        out = []
        for s in self.specs:
            phase = s.phase + (180.0 if s.gain < 0 else 0.0)
            out.append(describe_gabor(s.orientation, phase))
        return out


@dataclass(frozen=True)
class Term:
    """One inner channel in a rule: ``sign`` +1 reinforces, -1 negates. The spatial profile is
    a Gaussian elongated along ``orientation`` (degrees), ``length``/``width`` its standard
    deviations along/across, centred ``(dx, dy)`` pixels from the kernel centre (y up),
    normalised to sum 1 and scaled by ``strength``. ``context`` marks terms added for
    fine-tuning to grow (see :func:`handnet.bank.with_context`), not part of the written rule."""

    inner: int
    sign: int = 1
    strength: float = 1.0
    orientation: float = 0.0
    length: float = TERM_LENGTH
    width: float = TERM_WIDTH
    dx: float = 0.0
    dy: float = 0.0
    context: bool = False  # a learned-context term, not part of the written rule


@dataclass(frozen=True)
class Rule:
    """How one outer channel is built: its description, its terms and its bias."""

    description: str
    terms: tuple[Term, ...]
    bias: float = 0.0


class RuleConv2d(nn.Module):
    """``x: [N, I, H, W] -> [N, len(rules), H, W]``. ``weight[o, j]`` is the sum over the terms
    of rule ``o`` naming inner channel ``j`` of ``sign * strength * profile``; zero elsewhere."""

    index: torch.Tensor  # [K] outer * in_channels + inner of each term
    sign: torch.Tensor  # [K] +1 reinforce, -1 negate

    def __init__(self, in_channels: int, rules: Sequence[Rule], kernel_size: int = 5) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, len(rules)
        self.kernel_size = kernel_size
        self.padding = (kernel_size // 2, kernel_size // 2)
        self.stride = (1, 1)
        self.rule_descriptions = [r.description for r in rules]
        self.inner_names: list[str] | None = None  # set by the owner: the inner channels' names
        terms = [(o, t) for o, r in enumerate(rules) for t in r.terms]
        if any(not 0 <= t.inner < in_channels for _, t in terms):
            raise ValueError(f"a rule names an inner channel outside 0..{in_channels - 1}")
        if any(t.sign not in (1, -1) for _, t in terms):
            raise ValueError("a rule term's sign must be +1 (reinforce) or -1 (negate)")
        index = [o * in_channels + t.inner for o, t in terms]
        self.register_buffer("index", torch.tensor(index, dtype=torch.long))
        self.register_buffer("sign", torch.tensor([float(t.sign) for _, t in terms]))
        self.is_context = [t.context for _, t in terms]

        def param(values: list[float]) -> nn.Parameter:
            return nn.Parameter(torch.tensor(values, dtype=torch.float32))

        self.log_strength = param([math.log(t.strength) for _, t in terms])
        # radians, like GaborConv2d, so that Adam turns a profile at a sensible rate
        self.orientation = param([math.radians(t.orientation) for _, t in terms])
        self.log_length = param([math.log(t.length) for _, t in terms])
        self.log_width = param([math.log(t.width) for _, t in terms])
        self.dx = param([t.dx for _, t in terms])
        self.dy = param([t.dy for _, t in terms])
        self.bias = param([r.bias for r in rules])

    @property
    def weight(self) -> torch.Tensor:
        """``[O, I, k, k]`` built from the rules."""
        return self._kernels()

    def _kernels(self, only_context: bool = False) -> torch.Tensor:
        """``[O, I, k, k]``: the sum over the terms (or over the context terms only)."""
        k = self.kernel_size
        profiles = spatial_profile(
            k, torch.rad2deg(self.orientation), self.log_length.exp(), self.log_width.exp(),
            self.dx, self.dy,
        )  # fmt: skip
        scaled = (self.sign * self.log_strength.exp())[:, None, None] * profiles
        if only_context:
            keep = torch.tensor(self.is_context, dtype=scaled.dtype, device=scaled.device)
            scaled = scaled * keep[:, None, None]
        flat = scaled.new_zeros(self.out_channels * self.in_channels, k, k)
        flat = flat.index_add(0, self.index, scaled)
        return flat.view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    @property
    def descriptions(self) -> list[str]:
        """The written rule of each outer channel, followed by the context inputs that
        fine-tuning made matter (net strength over a quarter of the rule's strongest term)."""
        return [self._describe(o) for o in range(self.out_channels)]

    def _describe(self, o: int) -> str:
        written = max((t.strength for (oo, t), c in zip(self.terms(), self.is_context, strict=True)
                       if oo == o and not c), default=0.0)  # fmt: skip
        with torch.no_grad():
            context = self._kernels(only_context=True)[o].cpu()
        mass, net = context.abs().sum(dim=(1, 2)), context.sum(dim=(1, 2))
        grown = [(j, float(mass[j]), float(net[j])) for j in range(self.in_channels)
                 if written > 0 and mass[j] > 0.25 * written]  # fmt: skip
        if not grown:
            return self.rule_descriptions[o]
        names = self.inner_names or [f"channel {j + 1}" for j in range(self.in_channels)]

        def verb(m: float, v: float) -> str:
            if abs(v) < 0.5 * m:  # as much positive as negative weight: a spatial reshaping
                return "reshaping"
            return "reinforcing" if v > 0 else "suppressing"

        parts = [f"{verb(m, v)} {names[j]} ({m / written:.2f})"
                 for j, m, v in sorted(grown, key=lambda g: -g[1])]  # fmt: skip
        return f"{self.rule_descriptions[o]}; learned: {', '.join(parts)}"

    def terms(self) -> list[tuple[int, Term]]:
        """The current terms as ``(outer, Term)`` pairs, parameters in degrees and pixels."""
        inner = (self.index % self.in_channels).tolist()
        outer = (self.index // self.in_channels).tolist()
        rows = zip(
            outer, inner, self.sign.tolist(), self.log_strength.exp().tolist(),
            torch.rad2deg(self.orientation).tolist(), self.log_length.exp().tolist(),
            self.log_width.exp().tolist(), self.dx.tolist(), self.dy.tolist(), strict=True,
        )  # fmt: skip
        return [(o, Term(j, int(s), st, th, ln, wd, dx, dy, c))
                for (o, j, s, st, th, ln, wd, dx, dy), c in zip(rows, self.is_context,
                                                                 strict=True)]  # fmt: skip
