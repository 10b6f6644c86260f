"""Analytic first-layer filters: Gabor kernels from their formula, and line / edge detectors.

Angles follow the suite's convention: degrees counter-clockwise from the horizontal as the
image is shown (up is up; row 0 is the top), so ``/`` is 45, ``|`` is 90 and ``\\`` is 135.
``orientation`` is the direction of the *line* (the stripes); the cosine is modulated across
it, along the normal ``orientation + 90``. With ``u`` the coordinate along that normal and ``v``
the coordinate along the line (pixels from the kernel centre)::

    g(u, v) = exp(-(u^2 + aspect^2 v^2) / (2 sigma^2)) * cos(2 pi u / wavelength + phase)

Phase 0 (even) is a bright line; phase -90 degrees (odd) is positive on the side the normal
points to (for a vertical line the left), so, conv2d being a correlation, it fires on the
*other* side of a bright line: phase -90 at 90 degrees is "right side of a vertical line".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "GaborSpec",
    "gabor_kernel",
    "line_detector",
    "edge_detector",
    "line_detector_spec",
    "edge_detector_spec",
    "spec_kernel",
    "describe_line",
    "describe_gabor",
    "ORIENTATIONS",
    "centred_grid",
    "along_across",
]

ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)
SNAP_DEGREES = 5  # within this of 0 or 90 a line is called horizontal or vertical

_SIDES = (
    "right",
    "upper-right",
    "top",
    "upper-left",
    "left",
    "lower-left",
    "bottom",
    "lower-right",
)


@dataclass(frozen=True)
class GaborSpec:
    """Parameters of one Gabor kernel (angles in degrees, lengths in pixels)."""

    orientation: float = 0.0
    wavelength: float = 4.0
    phase: float = 0.0
    sigma: float = 1.2
    aspect: float = 0.5
    gain: float = 1.0
    bias: float = 0.0


def centred_grid(
    size: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred pixel coordinates ``x`` (right) and ``y`` (up), each ``[size, size]``."""
    r = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float32, device=device) - r
    y, x = torch.meshgrid(-coords, coords, indexing="ij")  # row 0 is the top: y up
    return x, y


def along_across(
    x: torch.Tensor, y: torch.Tensor, orientation_deg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates along a line at ``orientation_deg`` and across it (along its normal)."""
    t = torch.deg2rad(orientation_deg)
    return x * torch.cos(t) + y * torch.sin(t), -x * torch.sin(t) + y * torch.cos(t)


def gabor_kernel(
    size: int,
    orientation_deg: float | torch.Tensor,
    wavelength: float | torch.Tensor,
    phase: float | torch.Tensor = 0.0,
    sigma: float | torch.Tensor = 1.2,
    aspect: float | torch.Tensor = 0.5,
) -> torch.Tensor:
    """The real Gabor kernel ``[size, size]`` (``phase`` in degrees). Differentiable in every
    parameter when they are tensors; batched parameters of shape ``[C]`` give ``[C, size, size]``.
    """
    given = (orientation_deg, wavelength, phase, sigma, aspect)
    # plain numbers join the tensors given (a module's parameters) on their device
    device = next((p.device for p in given if isinstance(p, torch.Tensor)), torch.device("cpu"))
    params = [torch.as_tensor(p, dtype=torch.float32, device=device) for p in given]
    theta, lam, psi, sig, gam = (p[..., None, None] for p in params)
    x, y = centred_grid(size, theta.device)
    v, u = along_across(x, y, theta)
    envelope = torch.exp(-(u**2 + gam**2 * v**2) / (2 * sig**2))
    return envelope * torch.cos(2 * math.pi * u / lam + torch.deg2rad(psi))


def line_detector_spec(
    orientation: float, width: float = 2.0, gain: float = 0.15, bias: float = 0.0
) -> GaborSpec:
    """Even Gabor for a bright line of about ``width`` pixels at ``orientation`` degrees."""
    return GaborSpec(orientation, 2 * width, 0.0, 0.6 * width, 0.5, gain, bias)


def edge_detector_spec(
    side_deg: float, width: float = 2.0, gain: float = 0.15, bias: float = 0.0
) -> GaborSpec:
    """Odd Gabor that fires on the side ``side_deg`` of a bright line (180: the left side of a
    vertical line, its positive lobe lying on the right)."""
    return GaborSpec(side_deg - 90.0, 2 * width, 90.0, 0.6 * width, 0.5, gain, bias)


def spec_kernel(spec: GaborSpec, size: int = 5, zero_mean: bool = True) -> torch.Tensor:
    """The kernel ``[size, size]`` of ``spec`` (without its gain), zero-mean if asked."""
    k = gabor_kernel(size, spec.orientation, spec.wavelength, spec.phase, spec.sigma, spec.aspect)
    return k - k.mean() if zero_mean else k


def line_detector(orientation: float, size: int = 5, width: float = 2.0) -> torch.Tensor:
    """Zero-mean even Gabor responding to a bright line at ``orientation``. ``[size, size]``."""
    return spec_kernel(line_detector_spec(orientation, width), size)


def edge_detector(side_deg: float, size: int = 5, width: float = 2.0) -> torch.Tensor:
    """Zero-mean odd Gabor firing on the side ``side_deg`` of a bright line. ``[size, size]``."""
    return spec_kernel(edge_detector_spec(side_deg, width), size)


def describe_line(deg: float) -> str:
    """ "horizontal line", "vertical line" (within SNAP_DEGREES) or "line at N degrees"."""
    o = int(round(deg)) % 180
    if min(o, 180 - o) <= SNAP_DEGREES:
        return "horizontal line"
    if abs(o - 90) <= SNAP_DEGREES:
        return "vertical line"
    return f"line at {o} degrees"


def describe_gabor(orientation: float, phase: float) -> str:
    """A short description: ``"line at 45 degrees"``, ``"left side of a vertical line"``.

    Even phases (cosine near +-1 at the centre) are lines (dark for a phase near 180); odd ones
    are the side of a line on which the positive lobe lies.
    """
    p = (phase + 180.0) % 360.0 - 180.0
    if abs(p) <= 45 or abs(p) >= 135:
        return ("" if abs(p) <= 45 else "dark ") + describe_line(orientation)
    # conv2d is a correlation: a positive lobe on one side fires when the line lies there,
    # i.e. while the kernel centre sits on the *other* side of the line.
    normal = orientation + (270.0 if p < 0 else 90.0)
    side = _SIDES[int(round(normal / 45.0)) % 8]
    return f"{side} side of a {describe_line(orientation)}"
