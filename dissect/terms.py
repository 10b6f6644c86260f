"""A row of a contribution table summarised as one oriented term.

A row is the kernel ``w[o, j]`` by which an outer channel reads inner channel ``j``. Its term
is one oriented Gaussian profile (summing to 1) of a fixed shape given by the inner channel's
words: :data:`TERM_LENGTH` along the orientation they name and :data:`TERM_WIDTH` across it,
or round (:data:`TERM_ROUND`, the same area) where they name none (a corner, a curve, an
undescribed channel). Of that profile centred at every half-pixel place within the kernel, the
one whose least-squares multiple fits the row best gives the term: its sign (the row reinforces
or negates its inner channel there), its place (``dx`` right, ``dy`` up, in the inner map's
pixels from the kernel's centre) and its strength (the multiple's size).

The term says where a row adds or takes away, which a row's role does not: the role compares a
row's contribution with its inner channel at the same place, so a lobe a pixel off centre, or
one of two lobes of opposite sign, reads as "other". ``handnet``'s compiled explanation builds
each rule from these terms, and contribution tables show them (:func:`term_words`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from dissect.gabor import along_across, centred_grid
from dissect.probes import ORIENTATION_OF

__all__ = [
    "RowTerm",
    "spatial_profile",
    "profile_of",
    "row_term",
    "term_words",
    "TERM_LENGTH",
    "TERM_WIDTH",
    "TERM_ROUND",
]

# A term's profile: standard deviations (inner-map pixels) along and across the orientation the
# inner channel's words name; round, of the same area, where they name none.
TERM_LENGTH, TERM_WIDTH = 1.5, 0.7
TERM_ROUND = (TERM_LENGTH * TERM_WIDTH) ** 0.5


def spatial_profile(
    size: int,
    orientation_deg: torch.Tensor,
    length: torch.Tensor,
    width: torch.Tensor,
    dx: torch.Tensor,
    dy: torch.Tensor,
) -> torch.Tensor:
    """Oriented Gaussians ``[K, size, size]`` (each summing to 1) for parameters of shape ``[K]``."""
    x, y = (
        torch.as_tensor(v, dtype=length.dtype, device=length.device) for v in centred_grid(size)
    )
    along, across = along_across(
        x - dx[:, None, None], y - dy[:, None, None], orientation_deg[:, None, None]
    )
    g = torch.exp(-0.5 * ((along / length[:, None, None]) ** 2
                          + (across / width[:, None, None]) ** 2))  # fmt: skip
    return g / g.sum(dim=(-2, -1), keepdim=True)


@dataclass(frozen=True)
class RowTerm:
    """One row as a term: ``strength`` (signed: > 0 reinforces), place ``(dx, dy)`` and the
    profile's ``orientation`` (degrees), ``length`` and ``width``."""

    strength: float
    dx: float
    dy: float
    orientation: float
    length: float
    width: float

    @property
    def sign(self) -> int:
        return 1 if self.strength > 0 else -1


def profile_of(description: str | None) -> tuple[float, float, float]:
    """``(orientation, length, width)`` of the term over an inner channel so described."""
    if description is not None and description in ORIENTATION_OF:
        return float(ORIENTATION_OF[description]), TERM_LENGTH, TERM_WIDTH
    return 0.0, TERM_ROUND, TERM_ROUND


@lru_cache(maxsize=256)
def _placed(size: int, orientation: float, length: float, width: float) -> tuple[torch.Tensor, tuple[tuple[float, float], ...]]:  # fmt: skip
    """The profile at every half-pixel place of a ``size`` kernel: ``[P, size * size]`` (float64)
    and the places."""
    steps = [i / 2 for i in range(-(size - 1), size)]
    places = tuple((dx, dy) for dx in steps for dy in steps)
    n = len(places)

    def full(v: float) -> torch.Tensor:
        return torch.full((n,), v, dtype=torch.float64)

    dx, dy = (torch.tensor(v, dtype=torch.float64) for v in zip(*places, strict=True))
    return spatial_profile(size, full(orientation), full(length), full(width), dx, dy).flatten(1), places  # fmt: skip


def row_term(weight: torch.Tensor, description: str | None) -> RowTerm | None:
    """The row ``weight [k, k]`` summarised as one term of the profile the inner channel's
    ``description`` gives (see the module); None for a row of zeros or a kernel that is not
    square."""
    if weight.ndim != 2 or weight.shape[0] != weight.shape[1]:
        return None
    orientation, length, width = profile_of(description)
    profiles, places = _placed(int(weight.shape[0]), orientation, length, width)
    w = weight.detach().double().cpu().flatten()
    coef = profiles @ w / (profiles * profiles).sum(1)
    best = int(((w[None] - coef[:, None] * profiles) ** 2).sum(1).argmin())
    if float(coef[best]) == 0.0:
        return None
    return RowTerm(float(coef[best]), *places[best], orientation, length, width)


def term_words(term: RowTerm | None) -> str:
    """A term as a table shows it: ``"+0.153 at (1, -0.5)"`` (signed strength, place right and
    up); empty for none."""
    if term is None:
        return ""
    return f"{term.strength:+.3g} at ({term.dx:g}, {term.dy:g})"
