"""Analytic first-layer filters: Gabor specs, line and edge detectors, their descriptions.

The kernel is the suite's one Gabor, :func:`dissect.gabor.gabor_kernel`, whose docstring gives
the formula. Angles follow the suite's convention: degrees counter-clockwise from the horizontal
as the image is shown, so ``/`` is 45, ``|`` is 90 and ``\\`` is 135. A spec's ``orientation``
is the direction of the line and its ``phase`` is in degrees too: 0 is a bright line; -90 is
positive on the side the normal ``orientation + 90`` points to, so it fires on the *other* side
of a bright line: phase -90 at 90 degrees is "right side of a vertical line".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dissect.gabor import gabor_kernel
from dissect.probes import EDGE_SIDES

__all__ = [
    "GaborSpec",
    "line_detector",
    "edge_detector",
    "line_detector_spec",
    "edge_detector_spec",
    "spec_kernel",
    "describe_line",
    "describe_gabor",
    "ORIENTATIONS",
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
    """The kernel ``[size, size]`` of ``spec`` (without its gain), zero-mean if asked, on the
    CPU (a value to read or copy, not a layer's weight)."""
    # as float32 tensors, the kernel is computed as a GaborConv2d computes its weight
    o, w, p, s, a = (
        torch.tensor(v, dtype=torch.float32, device="cpu")
        for v in (spec.orientation, spec.wavelength, spec.phase, spec.sigma, spec.aspect)
    )
    k = gabor_kernel(size, o, w, p, s, a)
    return k - k.mean() if zero_mean else k


def line_detector(orientation: float, size: int = 5, width: float = 2.0) -> torch.Tensor:
    """Zero-mean even Gabor responding to a bright line at ``orientation``. ``[size, size]``."""
    return spec_kernel(line_detector_spec(orientation, width), size)


def edge_detector(side_deg: float, size: int = 5, width: float = 2.0) -> torch.Tensor:
    """Zero-mean odd Gabor firing on the side ``side_deg`` of a bright line. ``[size, size]``."""
    return spec_kernel(edge_detector_spec(side_deg, width), size)


def describe_line(deg: float) -> str:
    """ "horizontal line", "vertical line" (within SNAP_DEGREES) or "line at N degrees"."""
    half = round((deg % 180.0) * 2.0) / 2.0
    if half % 1.0 and abs(deg % 180.0 - half) < 0.05:  # the probes' in-between angles: 22.5, ...
        return f"line at {half:g} degrees"
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
    for angle, sides in EDGE_SIDES.items():  # at the probes' in-between angles, their words
        if angle % 45 and abs((orientation - angle + 90.0) % 180.0 - 90.0) < 0.05:
            for name, towards in sides:
                if abs((towards + 180.0 - normal + 180.0) % 360.0 - 180.0) < 1.0:
                    return name
    side = _SIDES[int(round(normal / 45.0)) % 8]
    return f"{side} side of a {describe_line(orientation)}"
