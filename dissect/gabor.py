"""The analytic Gabor filter and a least-squares Gabor fit of a filter: the suite's one Gabor.

Angles follow the suite's convention, in degrees: counter-clockwise from the horizontal as the
image is shown (up is up; image row 0 is the top). ``orientation`` is the direction of the
*line* (the stripes); the cosine runs across it, along the normal ``orientation + 90``. With
``u`` the coordinate across the line and ``v`` the coordinate along it (pixels from the kernel
centre, or from ``(x0, y0)``)::

    g(u, v) = exp(-(u^2 + aspect^2 v^2) / (2 sigma^2)) * cos(2 pi u / wavelength + phase)

Phase 0 (even) is a bright line with dark flanks; phase -90 degrees (odd) is positive on the side
the normal points to (for a vertical line the left), so, conv2d being a correlation, it fires
on the *other* side of a bright line. A negative gain is the same filter with the phase turned
by 180 degrees. Turning the orientation by 180 degrees and negating the phase gives the same
kernel, so fitted orientations are reported in [0, 180).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import reduce
from typing import Any

import numpy as np
import torch
from scipy.optimize import least_squares

__all__ = [
    "gabor_kernel",
    "centred_grid",
    "along_across",
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


def centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``x`` (right) and ``y`` (up) of a ``[size, size]`` kernel, from its
    centre (float64; whole or half pixels, so exact in any float type)."""
    c = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    return cols - c, -(rows - c)


def along_across(x: Any, y: Any, orientation_deg: Any) -> tuple[Any, Any]:
    """``(along, across)``: coordinates along a line at ``orientation_deg`` and across it (along
    its normal). Tensors (torch) or arrays (numpy), as given."""
    xp: Any = torch if isinstance(orientation_deg, torch.Tensor) else np
    t = xp.deg2rad(orientation_deg)
    return x * xp.cos(t) + y * xp.sin(t), -x * xp.sin(t) + y * xp.cos(t)


def gabor_kernel(
    size: int,
    orientation_deg: Any,
    wavelength: Any,
    phase: Any = 0.0,
    sigma: Any = 1.5,
    aspect: Any = 0.5,
    x0: float = 0.0,
    y0: float = 0.0,
) -> Any:
    """The real Gabor kernel ``[size, size]`` of the formula above (``orientation_deg`` and
    ``phase`` in degrees, lengths in pixels), centred ``(x0, y0)`` pixels from the kernel centre
    (x right, y up); ``aspect < 1`` elongates the envelope along the line.

    Parameters of shape ``[C]`` give ``[C, size, size]``. When any parameter is a tensor the
    kernel is a tensor on its device (float32 unless a parameter is float64), differentiable in
    every parameter (a layer's weight); otherwise a float64 numpy array (the fit's inner loop,
    where torch's per-call cost would make it several times slower).
    """
    given = (orientation_deg, wavelength, phase, sigma, aspect)
    tensors = [p for p in given if isinstance(p, torch.Tensor)]
    xp: Any = torch if tensors else np
    params: list[Any]
    x: Any
    y: Any
    if tensors:
        dtype = reduce(torch.promote_types, (p.dtype for p in tensors), torch.float32)
        device = tensors[0].device
        params = [torch.as_tensor(p, dtype=dtype, device=device) for p in given]
        x, y = (torch.as_tensor(v, dtype=dtype, device=device) for v in centred_grid(size))
    else:
        params = [np.asarray(p, dtype=np.float64) for p in given]
        x, y = centred_grid(size)
    theta, lam, psi, sig, gam = (p[..., None, None] for p in params)
    v, u = along_across(x - x0, y - y0, theta)
    envelope = xp.exp(-(u**2 + gam**2 * v**2) / (2 * sig**2))
    return envelope * xp.cos(2 * math.pi * u / lam + xp.deg2rad(psi))


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


# The fit's parameter vector: orientation (degrees), wavelength, phase (*radians*: its steps are
# then of the order of the other parameters'), sigma, aspect, amplitude and, unless the fit is
# centred, the centre (x0, y0). Converted to the kernel's degrees in _kernel only.
_PARAMS = 8
_CENTRED_PARAMS = 6


def _kernel(p: np.ndarray, size: int, zero_mean: bool = False) -> np.ndarray:
    """The kernel of the parameter vector ``p`` (6 or 8 entries), zero-mean if asked."""
    theta, lam, phase, sigma, aspect, amp, x0, y0 = (*p, 0.0, 0.0)[:_PARAMS]
    k = amp * gabor_kernel(size, theta, lam, np.rad2deg(phase), sigma, aspect, x0, y0)
    return k - k.mean() if zero_mean else k


def _residual(p: np.ndarray, target: np.ndarray, zero_mean: bool = False) -> np.ndarray:
    return (_kernel(p, len(target), zero_mean) - target).ravel()


def _jacobian(p: np.ndarray, target: np.ndarray, zero_mean: bool = False) -> np.ndarray:
    """``d residual / d p`` in closed form, ``[size * size, len(p)]`` (columns in the order of
    ``p``; a zero-mean kernel's columns are centred too, the mean being linear).

    With ``a`` along, ``d`` across, ``E`` the envelope and ``u = 2 pi d / wavelength + phase``,
    the kernel is ``A E cos u``; turning the orientation moves ``(a, d)`` to ``(d, -a)`` and
    shifting the centre moves both by the rotated shift."""
    theta, lam, phase, sigma, aspect, amp, x0, y0 = (*p, 0.0, 0.0)[:_PARAMS]
    x, y = centred_grid(len(target))
    a, d = (v.ravel() for v in along_across(x - x0, y - y0, theta))
    cos_t, sin_t = np.cos(np.deg2rad(theta)), np.sin(np.deg2rad(theta))
    envelope = np.exp(-(a**2 * aspect**2 + d**2) / (2 * sigma**2))
    u = 2 * np.pi * d / lam + phase
    cos_u, sin_u = envelope * np.cos(u), envelope * np.sin(u)
    by_a = -amp * cos_u * a * aspect**2 / sigma**2  # d kernel / d a
    by_d = -amp * (cos_u * d / sigma**2 + sin_u * 2 * np.pi / lam)  # d kernel / d d
    jac = np.stack(
        [
            (by_a * d - by_d * a) * np.pi / 180,
            amp * sin_u * 2 * np.pi * d / lam**2,
            -amp * sin_u,
            amp * cos_u * (a**2 * aspect**2 + d**2) / sigma**3,
            -amp * cos_u * a**2 * aspect / sigma**2,
            cos_u,
            -by_a * cos_t + by_d * sin_t,
            -by_a * sin_t - by_d * cos_t,
        ][: len(p)],
        axis=1,
    )
    return jac - jac.mean(0) if zero_mean else jac


def _grid_starts(k: np.ndarray, count: int, zero_mean: bool = False) -> list[list[float]]:
    """Starts for the fit: centred Gabors of a coarse grid (orientation x wavelength x
    envelope), each with its amplitude and phase solved exactly. ``A cos(u + phase)`` is
    ``a cos u - b sin u`` with ``(a, b) = A (cos phase, sin phase)``, linear in ``(a, b)``, so
    every grid point costs one 2 x 2 solve, all of them at once."""
    size = len(k)
    grid = np.array(
        [
            (theta, lam, sigma, aspect)
            for theta in np.arange(0.0, 180.0, 15.0)
            for lam in size * np.array([0.5, 0.8, 1.2, 2.0, 3.5])
            for sigma in size * np.array([0.15, 0.25, 0.4])
            for aspect in (0.4, 0.8)
        ]
    )
    theta, lam, sigma, aspect = grid.T
    # cos u and, the phase turned by 90 degrees, -sin u: [G, 2, P]
    basis = np.stack(
        [gabor_kernel(size, theta, lam, phase, sigma, aspect).reshape(len(grid), -1)
         for phase in (0.0, 90.0)],
        axis=1,
    )  # fmt: skip
    if zero_mean:
        basis = basis - basis.mean(-1, keepdims=True)
    gram = basis @ basis.transpose(0, 2, 1) + 1e-12 * np.eye(2)
    coef = np.linalg.solve(gram, (basis @ k.ravel())[..., None])[..., 0]  # [G, 2]
    err = ((np.einsum("gi,gip->gp", coef, basis) - k.ravel()) ** 2).sum(1)
    # the best grid point in each of ``count`` orientation sectors: starts in different basins
    sector = ((grid[:, 0] + 90.0 / count) % 180.0 // (180.0 / count)).astype(int)
    starts = []
    for q in range(count):
        members = np.flatnonzero(sector == q)
        g = members[np.argmin(err[members])]
        a, b = coef[g]
        starts.append(
            [theta[g], lam[g], float(np.arctan2(b, a)), sigma[g], aspect[g],
             float(np.hypot(a, b)), 0.0, 0.0]
        )  # fmt: skip
    return starts


def gabor_fit(
    kernel: Any, starts: int = 4, *, zero_mean: bool = False, centred: bool = False
) -> GaborFit:
    """Least-squares fit (scipy) of a Gabor to a square 2-D ``kernel``, refined from the best
    point of a coarse grid in each of ``starts`` orientation sectors; returns the best fit and
    its R^2.

    ``zero_mean``: fit the Gabor less its mean (the family HandNet's first layer is built from);
    ``centred``: keep the Gabor's centre on the kernel's, so that its phase says which side of a
    line the kernel fires on. By default both the mean and the centre are free to differ.
    """
    k = np.asarray(kernel, dtype=np.float64)
    size = len(k)
    sst = float(((k - k.mean()) ** 2).sum())
    if sst <= 1e-20:
        return GaborFit(0.0, float(size), 0.0, 1.0, 1.0, 0.0, 0.0)
    scale = float(np.abs(k).max())
    n = _CENTRED_PARAMS if centred else _PARAMS
    lower = [-720, 2.0, -4 * np.pi, 0.5, 0.2, -10 * scale, -size / 2, -size / 2][:n]
    upper = [720, 4.0 * size, 4 * np.pi, float(size), 2.0, 10 * scale, size / 2, size / 2][:n]
    best = None
    for start in _grid_starts(k, starts, zero_mean):
        clipped = np.clip(start[:n], lower, upper)
        res = least_squares(
            _residual, clipped, jac=_jacobian, args=(k, zero_mean), bounds=(lower, upper),
            max_nfev=120,
        )  # fmt: skip
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    theta, lam, phase, sigma, aspect, amp = best.x[:_CENTRED_PARAMS]
    if amp < 0:  # a negative amplitude is the same filter with the phase turned by pi
        amp, phase = -amp, phase + np.pi
    orientation = float(theta % 180.0) % 180.0  # a tiny negative theta wraps to 180.0, then 0
    if round((theta - orientation) / 180.0) % 2:  # odd half turns: the same filter, phase negated
        phase = -phase
    r2 = 1.0 - 2 * best.cost / sst
    return GaborFit(
        orientation=orientation,
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
