"""Probes: synthetic inputs (28x28 by default, or the model's own input shape) (white on black, pixels in [0, 1]) used to label channels.

Each probe class has several variants (widths, positions). Class names are the descriptions a
channel gets when it responds most to that class. Angles: degrees counter-clockwise from the
horizontal as shown (up is up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "ProbeSet",
    "make_probes",
    "LINE_NAMES",
    "EDGE_SIDES",
    "FINE",
    "ORIENTATION_OF",
    "INTERIOR_OF",
    "END_NAMES",
]

SIZE = 28
# Eight orientations, 22.5 degrees apart, for the first layer: its filters are tuned anywhere,
# and one tuned half-way between two of four orientations would be described by a neighbour
# whose words its real strokes do not bear out. Deeper layers, whose tuning is broader and who
# answer many kinds of probe, are described at the four main orientations (:data:`FINE`).
LINE_NAMES: dict[float, str] = {
    0: "horizontal line",
    22.5: "line at 22.5 degrees",
    45: "line at 45 degrees (/)",
    67.5: "line at 67.5 degrees",
    90: "vertical line",
    112.5: "line at 112.5 degrees",
    135: "line at 135 degrees (\\)",
    157.5: "line at 157.5 degrees",
}
# For each orientation, the two sides of a line: name of the side, and the direction (in the
# image, x right / y up) from the line towards its bright interior.
EDGE_SIDES: dict[float, tuple[tuple[str, float], tuple[str, float]]] = {
    0: (("top side of a horizontal line", -90), ("bottom side of a horizontal line", 90)),
    22.5: (("upper side of a line at 22.5 degrees", -67.5),
           ("lower side of a line at 22.5 degrees", 112.5)),
    45: (("upper-left side of a / line", -45), ("lower-right side of a / line", 135)),
    67.5: (("left side of a line at 67.5 degrees", -22.5),
           ("right side of a line at 67.5 degrees", 157.5)),
    90: (("left side of a vertical line", 0), ("right side of a vertical line", 180)),
    112.5: (("left side of a line at 112.5 degrees", 22.5),
            ("right side of a line at 112.5 degrees", -157.5)),
    135: (("upper-right side of a \\ line", -135), ("lower-left side of a \\ line", 45)),
    157.5: (("upper side of a line at 157.5 degrees", -112.5),
            ("lower side of a line at 157.5 degrees", 67.5)),
}  # fmt: skip


# The line and edge classes at the four in-between orientations (first layer only).
FINE = frozenset(
    name
    for angle in (22.5, 67.5, 112.5, 157.5)
    for name in (LINE_NAMES[angle], *(n for n, _ in EDGE_SIDES[angle]))
)

# The orientation (degrees) of every line and edge class: what a first-layer description says.
ORIENTATION_OF = {name: angle for angle, name in LINE_NAMES.items()} | {
    name: angle for angle, sides in EDGE_SIDES.items() for name, _ in sides
}
# Of every edge class, the direction (degrees in [0, 360)) from its line towards the bright
# interior: which way the intensity rises across it.
INTERIOR_OF = {
    name: float(towards) % 360 for sides in EDGE_SIDES.values() for name, towards in sides
}


@dataclass(frozen=True)
class ProbeSet:
    """``images [P, 1, 28, 28]``, ``classes`` (one name per probe), ``kinds`` (line, edge, ...)."""

    images: torch.Tensor
    classes: list[str]
    kinds: list[str]

    @property
    def class_names(self) -> list[str]:
        return list(dict.fromkeys(self.classes))


def _coords(
    size: tuple[int, int] = (SIZE, SIZE), sub: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    h, w = size  # pixel (h // 2, w // 2) is the centre, so lines of odd width sit on pixel rows
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    return cols - w // 2 + sub[0], -(rows - h // 2) + sub[1]


# A stroke at an orientation that is not a multiple of 45 degrees drawn crisp is a staircase,
# whose steps excite edge filters more than the stroke does; such strokes are drawn with each
# pixel's covered area (SUBPIXELS x SUBPIXELS samples) instead.
SUBPIXELS = 4


def _smooth(angle: float) -> bool:
    return angle % 45 != 0


def _covered(
    shape: Callable[[np.ndarray, np.ndarray], np.ndarray], smooth: bool, size: tuple[int, int]
) -> np.ndarray:
    """``shape(x, y)`` (1 inside, 0 outside) at the pixel centres, or, where ``smooth``, the
    share of each pixel it covers (the mean over SUBPIXELS x SUBPIXELS samples)."""
    if not smooth:
        return shape(*_coords(size))
    steps = [(i + 0.5) / SUBPIXELS - 0.5 for i in range(SUBPIXELS)]
    return sum((shape(*_coords(size, (dx, dy))) for dx in steps for dy in steps),
               np.zeros(size)) / SUBPIXELS**2  # fmt: skip


def _inside(d: np.ndarray) -> np.ndarray:
    """1 where ``d <= 0`` else 0: crisp strokes, so that a 1-px line is exactly one pixel wide."""
    return (d <= 1e-9).astype(np.float64)


def line(
    angle: float,
    width: float,
    offset: float,
    length: float | None = None,
    shift: float = 0.0,
    size: tuple[int, int] = (SIZE, SIZE),
) -> np.ndarray:
    """A bright line along ``angle`` through a point ``offset`` px off the centre (across it);
    with ``length``, a segment from ``shift`` along the line for ``length`` px (anti-aliased
    where ``angle`` is no multiple of 45 degrees)."""
    t = np.deg2rad(angle)

    def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        along = x * np.cos(t) + y * np.sin(t)
        across = -x * np.sin(t) + y * np.cos(t) - offset
        inside = _inside(np.abs(across) - width / 2)
        if length is not None:
            inside *= _inside(np.abs(along - shift - length / 2) - length / 2)
        return inside

    return _covered(shape, _smooth(angle), size)


def edge(
    towards: float, offset: float, thickness: float = 60.0, size: tuple[int, int] = (SIZE, SIZE)
) -> np.ndarray:
    """A bright half-plane (a stroke wider than the image) whose one boundary runs near the
    centre; ``towards`` is the direction from the boundary into the bright part (anti-aliased
    where the boundary's orientation is no multiple of 45 degrees)."""
    t = np.deg2rad(towards)

    def shape(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        inside = x * np.cos(t) + y * np.sin(t) - offset
        return _inside(-inside) * _inside(inside - thickness) * (inside > -1e-9)

    return _covered(shape, _smooth(towards), size)


def arc(
    opening: float, radius: float, width: float = 2.0, size: tuple[int, int] = (SIZE, SIZE)
) -> np.ndarray:
    """Half a ring whose open side faces ``opening`` (degrees), centred on the image."""
    x, y = _coords(size)
    t = np.deg2rad(opening)
    ring = _inside(np.abs(np.hypot(x, y) - radius) - width / 2)
    return ring * ((x * np.cos(t) + y * np.sin(t)) <= 0.5)


def corner(
    direction: float, width: float = 2.0, arm: float = 9.0, size: tuple[int, int] = (SIZE, SIZE)
) -> np.ndarray:
    """Two arms meeting at the centre at a right angle, the corner opening towards
    ``direction`` (one of 45, 135, 225, 315)."""
    a = line(direction - 45, width, 0.0, length=arm, shift=0.0, size=size)
    b = line(direction + 45, width, 0.0, length=arm, shift=0.0, size=size)
    return np.maximum(a, b)


# Line ends, keyed by the direction (degrees) in which the line runs on from its end: the
# horizontal and vertical lines' and the diagonals' (whose ends a hand-built end-stop names).
END_NAMES: dict[int, str] = {
    0: "left end of a horizontal line", 180: "right end of a horizontal line",
    90: "bottom end of a vertical line", 270: "top end of a vertical line",
    45: "lower-left end of a / line", 225: "upper-right end of a / line",
    135: "lower-right end of a \\ line", 315: "upper-left end of a \\ line",
}  # fmt: skip
# A line end's stroke runs on to the image border (20 px, clipped): at 12 px, a diagonal's far
# end, moved by the shifts below, came within the central half where responses are read, and
# HandNet's upper-left end of a \ line was read as the lower-right end that faced it. Every
# end is matched by its whole line at the same width and shifts (kind "whole line", deeper
# layers only): otherwise an end won where its width or phase suited a channel better than
# the lines' own (HandNet's line at 45 degrees was read as the lower-left end of a / line).
END_LENGTH = 20.0


# A deeper channel sees its input through 2x2 max-poolings, so its answer to a stroke depends on
# where the stroke falls on the pooling grid: two poolings (before a third conv layer) have four
# phases along each axis. Every probe class meets a channel at each of them: lines at five places
# across, edges at every pixel, corners, curves and line ends at every shift of up to three
# pixels right and down. (Drawn at the centre only, a corner opening up-left lost to the curves
# in HandNet's corner rule that its three mirror images won, and every shape class answered
# deeper channels less than lines and edges did, which flattered their confidence.)
PHASES = 4


def _shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``img`` moved ``dx`` pixels right and ``dy`` down, zeros filling in (nothing wraps)."""
    out = np.zeros_like(img)
    h, w = img.shape
    out[dy:, dx:] = img[: h - dy, : w - dx]
    return out


def _edge_offsets(angle: float) -> tuple[float, ...]:
    """Where the boundary of an edge probe runs (pixels off the centre, across it): crisp edges
    at every pixel from -4 to 4, so that a deeper channel meets an edge at each phase of the 2x2
    poolings before it, as it meets lines at five places (at three even places, the side of a
    line that lies on the other phase lost to the line itself: HandNet's bottom side of a
    horizontal line was read as a horizontal line, its top side as a top side); anti-aliased
    ones every quarter pixel in between, so that an edge filter
    meets some edge at every sub-pixel phase a line's side can have (an edge filter answers a
    thick line's side as a half-plane, and a tie must not be broken by sub-pixel luck)."""
    if not _smooth(angle):
        return tuple(float(i) for i in range(-4, 5))
    return tuple(-4.0 + 0.25 * i for i in range(33))


def make_probes(shape: tuple[int, int, int] = (1, SIZE, SIZE)) -> ProbeSet:
    """The probe set of :func:`_draw_probes` for ``shape``: drawn once per process and shape (a
    layer's description draws it, and pruning describes every layer at every cut), handed
    out as a fresh copy each time."""
    drawn = _draw_probes(tuple(shape))
    return ProbeSet(drawn.images.clone(), list(drawn.classes), list(drawn.kinds))


@lru_cache(maxsize=4)
def _draw_probes(shape: tuple[int, int, int]) -> ProbeSet:
    """Edges (16 sides x 9 positions, 33 for the anti-aliased ones), lines (8 angles x 3 widths
    x 5 positions), line ends (:data:`END_NAMES`, 8 x 3 widths, each beside its whole line at
    the same width and shifts), corners (4 openings x 2 widths) and curves (4 openings x 3
    radii), the last three each at 4 x 4 shifts (:data:`PHASES`), drawn
    at the model's input ``shape`` (C, H, W; grey strokes in every channel); positions, radii
    and lengths scale with the image, stroke widths stay in pixels.

    Edges come first: an odd (edge) filter answers a thick line's side as strongly as a
    half-plane, and ties go to the earlier class, so it is called an edge detector. Line ends
    come before corners and curves for the same reason: a corner's arm and a curve's ends end
    freely as a line does, so a channel that answers such an end as strongly as the whole shape
    is an end-stop (HandNet's "left end of a horizontal line" tied with two corners)."""
    channels, h, w = shape
    size, k = (h, w), min(h, w) / SIZE
    images, classes, kinds = [], [], []

    def add(img: np.ndarray, name: str, kind: str) -> None:
        images.append(img)
        classes.append(name)
        kinds.append(kind)

    def add_shifts(img: np.ndarray, name: str, kind: str) -> None:
        for dy in range(PHASES):
            for dx in range(PHASES):
                add(_shifted(img, dx, dy), name, kind)

    for angle, sides in EDGE_SIDES.items():
        for name, towards in sides:
            for offset in _edge_offsets(angle):
                add(edge(towards, k * offset, size=size), name, "edge")
    for angle, name in LINE_NAMES.items():
        for width in (1.0, 2.5, 4.0):
            for offset in (-6.0, -3.0, 0.0, 3.0, 6.0):
                add(line(angle, width, k * offset, size=size), name, "line")
    for direction, name in END_NAMES.items():
        for width in (1.5, 2.5, 3.5):
            add_shifts(line(direction, width, 0.0, END_LENGTH * k, 0.0, size), name, "line end")
            if direction < 180:  # the whole line each end belongs to, at its width and shifts
                whole = line(direction, width, 0.0, size=size)
                add_shifts(whole, LINE_NAMES[float(direction)], "whole line")
    corner_names = {45: "corner opening up-right", 135: "corner opening up-left",
                    225: "corner opening down-left", 315: "corner opening down-right"}  # fmt: skip
    for direction, name in corner_names.items():
        for width in (1.5, 3.0):
            add_shifts(corner(direction, width, 9.0 * k, size=size), name, "corner")
    curve_names = {
        0: "curve opening right",
        90: "curve opening up",
        180: "curve opening left",
        270: "curve opening down",
    }
    for opening, name in curve_names.items():
        for radius in (4.0, 6.0, 8.0):
            add_shifts(arc(opening, k * radius, size=size), name, "curve")
    tensor = torch.tensor(np.stack(images), dtype=torch.float32, device="cpu")[:, None].repeat(
        1, channels, 1, 1
    )
    return ProbeSet(tensor.clamp(0, 1), classes, kinds)
