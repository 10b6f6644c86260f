"""The analytic Gabor filter and a least-squares Gabor fit of a filter.

Angles follow the suite's convention: degrees counter-clockwise from the horizontal as the
image is shown (up is up; image row 0 is the top). A Gabor of orientation ``theta`` and phase 0
is a bright line along ``theta`` with dark flanks; phase 90 degrees gives one side of an edge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares

__all__ = ["gabor_kernel", "GaborFit", "gabor_fit", "NOISE_R2"]

NOISE_R2 = 0.6  # a first-layer filter whose best Gabor fit explains less than this is noise-like


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
    c = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    x, y = cols - c - x0, -(rows - c) - y0
    t = np.deg2rad(orientation_deg)
    along = x * np.cos(t) + y * np.sin(t)
    across = -x * np.sin(t) + y * np.cos(t)
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


def gabor_fit(kernel: np.ndarray) -> GaborFit:
    """Least-squares fit (scipy) of a Gabor to a square 2-D ``kernel``, from several starts
    (four orientations x two phases); returns the best fit and its R^2."""
    k = np.asarray(kernel, dtype=np.float64)
    size = len(k)
    sst = float(((k - k.mean()) ** 2).sum())
    if sst <= 1e-20:
        return GaborFit(0.0, float(size), 0.0, 1.0, 1.0, 0.0, 0.0)
    scale = float(np.abs(k).max())
    lower = [-720, 2.0, -4 * np.pi, 0.5, 0.2, -10 * scale, -size / 2, -size / 2]
    upper = [720, 4.0 * size, 4 * np.pi, float(size), 2.0, 10 * scale, size / 2, size / 2]
    best = None
    for theta in (0.0, 45.0, 90.0, 135.0):
        for phase in (0.0, np.pi / 2):
            start = [theta, size * 0.8, phase, size / 4, 0.6, scale, 0.0, 0.0]
            res = least_squares(_residual, start, args=(k,), bounds=(lower, upper), max_nfev=120)
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
