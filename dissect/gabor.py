"""The analytic Gabor filter and a least-squares Gabor fit of a filter.

Angles follow the suite's convention: degrees counter-clockwise from the horizontal as the
image is shown (up is up; image row 0 is the top). A Gabor of orientation ``theta`` and phase 0
is a bright line along ``theta`` with dark flanks; phase 90 degrees gives one side of an edge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

__all__ = [
    "gabor_kernel",
    "GaborFit",
    "gabor_fit",
    "first_layer_fits",
    "NOISE_R2",
    "GABOR_MIN_PIXELS",
]

NOISE_R2 = 0.6  # a first-layer filter whose best Gabor fit explains less than this is noise-like
# A Gabor has 8 parameters: on a kernel of fewer pixels than this (3x3, 4x4) its R^2 is no
# evidence, and a channel is judged by its probe responses alone.
GABOR_MIN_PIXELS = 25


def _centred(size: int, x0: float = 0.0, y0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(x, y)`` of a ``[size, size]`` kernel (x right, y up) about
    ``(x0, y0)`` from its centre."""
    c = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    return cols - c - x0, -(rows - c) - y0


def _turn(x: np.ndarray, y: np.ndarray, theta_deg: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(along, across)``: coordinates along and across the orientation ``theta_deg``."""
    t = np.deg2rad(theta_deg)
    return x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)


def gabor_kernel(
    size: int,
    orientation_deg: float,
    wavelength: float,
    phase: float = 0.0,
    sigma: float = 1.5,
    aspect: float = 0.5,
    amplitude: float = 1.0,
    x0: float = 0.0,
    y0: float = 0.0,
) -> np.ndarray:
    """``[size, size]`` Gabor: ``A exp(-(a^2 aspect^2 + d^2) / (2 sigma^2)) cos(2 pi d / wavelength + phase)``.

    ``a`` runs along the orientation, ``d`` across it (``phase`` in radians); ``aspect < 1``
    elongates the envelope along the line. ``(x0, y0)`` shifts the centre (x right, y up).
    """
    along, across = _turn(*_centred(size, x0, y0), orientation_deg)
    envelope = np.exp(-(along**2 * aspect**2 + across**2) / (2 * sigma**2))
    return amplitude * envelope * np.cos(2 * np.pi * across / wavelength + phase)


@dataclass(frozen=True)
class GaborFit:
    """Best Gabor of a filter: orientation in [0, 180) degrees, phase in degrees, R^2."""

    orientation: float
    wavelength: float
    phase: float
    sigma: float
    aspect: float
    amplitude: float
    r2: float

    @property
    def noise_like(self) -> bool:
        return self.r2 < NOISE_R2

    def as_dict(self) -> dict[str, float | bool]:
        return {**asdict(self), "noise_like": self.noise_like}


def _residual(p: np.ndarray, target: np.ndarray) -> np.ndarray:
    theta, lam, phase, sigma, aspect, amp, x0, y0 = p
    return (
        gabor_kernel(len(target), theta, lam, phase, sigma, aspect, amp, x0, y0) - target
    ).ravel()


def _jacobian(p: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``d residual / d p`` in closed form, ``[size * size, 8]`` (columns in the order of ``p``).

    With ``a`` along, ``d`` across, ``E`` the envelope and ``u = 2 pi d / wavelength + phase``,
    the kernel is ``A E cos u``; turning the orientation moves ``(a, d)`` to ``(d, -a)`` and
    shifting the centre moves both by the rotated shift."""
    theta, lam, phase, sigma, aspect, amp, x0, y0 = p
    a, d = (v.ravel() for v in _turn(*_centred(len(target), x0, y0), theta))
    cos_t, sin_t = np.cos(np.deg2rad(theta)), np.sin(np.deg2rad(theta))
    envelope = np.exp(-(a**2 * aspect**2 + d**2) / (2 * sigma**2))
    u = 2 * np.pi * d / lam + phase
    cos_u, sin_u = envelope * np.cos(u), envelope * np.sin(u)
    by_a = -amp * cos_u * a * aspect**2 / sigma**2  # d kernel / d a
    by_d = -amp * (cos_u * d / sigma**2 + sin_u * 2 * np.pi / lam)  # d kernel / d d
    return np.stack(
        [
            (by_a * d - by_d * a) * np.pi / 180,
            amp * sin_u * 2 * np.pi * d / lam**2,
            -amp * sin_u,
            amp * cos_u * (a**2 * aspect**2 + d**2) / sigma**3,
            -amp * cos_u * a**2 * aspect / sigma**2,
            cos_u,
            -by_a * cos_t + by_d * sin_t,
            -by_a * sin_t - by_d * cos_t,
        ],
        axis=1,
    )


def _grid_starts(k: np.ndarray, count: int) -> list[list[float]]:
    """Starts for the fit: centred Gabors of a coarse grid (orientation x wavelength x
    envelope), each with its amplitude and phase solved exactly. ``A cos(u + phase)`` is
    ``a cos u - b sin u`` with ``(a, b) = A (cos phase, sin phase)``, linear in ``(a, b)``, so
    every grid point costs one 2 x 2 solve, all of them at once."""
    size = len(k)
    x, y = (v.ravel() for v in _centred(size))
    grid = np.array(
        [
            (theta, lam, sigma, aspect)
            for theta in np.arange(0.0, 180.0, 15.0)
            for lam in size * np.array([0.5, 0.8, 1.2, 2.0, 3.5])
            for sigma in size * np.array([0.15, 0.25, 0.4])
            for aspect in (0.4, 0.8)
        ]
    )
    along, across = _turn(x, y, grid[:, :1])
    envelope = np.exp(-(along**2 * grid[:, 3:] ** 2 + across**2) / (2 * grid[:, 2:3] ** 2))
    u = 2 * np.pi * across / grid[:, 1:2]
    basis = np.stack([envelope * np.cos(u), -envelope * np.sin(u)], axis=1)  # [G, 2, P]
    gram = basis @ basis.transpose(0, 2, 1) + 1e-12 * np.eye(2)
    coef = np.linalg.solve(gram, (basis @ k.ravel())[..., None])[..., 0]  # [G, 2]
    err = ((np.einsum("gi,gip->gp", coef, basis) - k.ravel()) ** 2).sum(1)
    # the best grid point in each of ``count`` orientation sectors: starts in different basins
    sector = ((grid[:, 0] + 90.0 / count) % 180.0 // (180.0 / count)).astype(int)
    starts = []
    for q in range(count):
        members = np.flatnonzero(sector == q)
        g = members[np.argmin(err[members])]
        theta, lam, sigma, aspect = grid[g]
        a, b = coef[g]
        starts.append(
            [theta, lam, float(np.arctan2(b, a)), sigma, aspect, float(np.hypot(a, b)), 0.0, 0.0]
        )
    return starts


def gabor_fit(kernel: np.ndarray, starts: int = 4) -> GaborFit:
    """Least-squares fit (scipy) of a Gabor to a square 2-D ``kernel``, refined from the best
    point of a coarse grid in each of ``starts`` orientation sectors; returns the best fit and
    its R^2."""
    k = np.asarray(kernel, dtype=np.float64)
    size = len(k)
    sst = float(((k - k.mean()) ** 2).sum())
    if sst <= 1e-20:
        return GaborFit(0.0, float(size), 0.0, 1.0, 1.0, 0.0, 0.0)
    scale = float(np.abs(k).max())
    lower = [-720, 2.0, -4 * np.pi, 0.5, 0.2, -10 * scale, -size / 2, -size / 2]
    upper = [720, 4.0 * size, 4 * np.pi, float(size), 2.0, 10 * scale, size / 2, size / 2]
    best = None
    for start in _grid_starts(k, starts):
        clipped = np.clip(start, lower, upper)
        res = least_squares(
            _residual, clipped, jac=_jacobian, args=(k,), bounds=(lower, upper), max_nfev=120
        )
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    theta, lam, phase, sigma, aspect, amp, _, _ = best.x
    if amp < 0:  # a negative amplitude is the same filter with the phase turned by pi
        amp, phase = -amp, phase + np.pi
    r2 = 1.0 - 2 * best.cost / sst
    return GaborFit(
        orientation=float(theta % 180.0),
        wavelength=float(lam),
        phase=float(np.rad2deg(phase) % 360.0),
        sigma=float(sigma),
        aspect=float(aspect),
        amplitude=float(amp),
        r2=float(r2),
    )


def first_layer_fits(weight: np.ndarray) -> tuple[list[GaborFit], bool]:
    """Gabor fits of first-layer filters ``weight [C, C_in, kh, kw]`` (each summed over its input
    channels), and whether they are evidence at all: a kernel of fewer than
    :data:`GABOR_MIN_PIXELS` pixels cannot tell a Gabor from anything else."""
    w = np.asarray(weight)
    return [gabor_fit(k.sum(0)) for k in w], w.shape[2] * w.shape[3] >= GABOR_MIN_PIXELS
