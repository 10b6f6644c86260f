"""The suite's one Gabor: known values, scikit-image's kernel, its two array types, angles in
degrees, and the fit's options (zero-mean, centred) and half-turn symmetry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.filters import gabor_kernel as sk_gabor

from dissect.gabor import _jacobian, _residual, gabor_fit, gabor_kernel


def test_known_values() -> None:
    k = gabor_kernel(5, 0.0, 4.0, 0.0, 1.0, 1.0)
    assert k[2, 2] == pytest.approx(1.0)
    # one pixel above the centre of a horizontal line: u = 1, cos(pi/2) = 0
    assert k[1, 2] == pytest.approx(0.0, abs=1e-12)
    # two pixels above: envelope exp(-2), cos(pi) = -1
    assert k[0, 2] == pytest.approx(-math.exp(-2.0))
    # along the line, only the envelope with aspect 1: exp(-1/2)
    assert k[2, 3] == pytest.approx(math.exp(-0.5))


@pytest.mark.parametrize("orientation", [0.0, 30.0, 45.0, 90.0, 135.0])
@pytest.mark.parametrize("phase", [0.0, -90.0, 60.0])
def test_matches_skimage(orientation: float, phase: float) -> None:
    lam, sigma, aspect, size = 4.0, 1.5, 0.6, 7
    ours = gabor_kernel(size, orientation, lam, phase, sigma, aspect)
    # scikit-image: y grows downwards and theta is the modulation direction.
    theirs = sk_gabor(1 / lam, theta=-math.radians(orientation + 90), sigma_x=sigma,
                      sigma_y=sigma / aspect, n_stds=6, offset=math.radians(phase))  # fmt: skip
    r, c = theirs.shape[0] // 2, theirs.shape[1] // 2
    crop = theirs.real[r - 3 : r + 4, c - 3 : c + 4] * 2 * math.pi * sigma * sigma / aspect
    np.testing.assert_allclose(ours, crop, atol=1e-9)


def test_tensors_give_the_same_kernel_differentiably() -> None:
    """Tensor parameters (a layer's weight) give the numpy formula's kernel, batched over
    ``[C]`` parameters, with a gradient for each."""
    params = [(0.0, 4.0, 0.0, 1.2, 0.5), (45.0, 4.0, 90.0, 1.3, 0.5), (120.0, 3.0, -30.0, 1.0, 0.7)]
    numpy_kernels = np.stack([gabor_kernel(5, *p) for p in params])
    columns = [
        torch.tensor(c, dtype=torch.float64, requires_grad=True) for c in zip(*params, strict=True)
    ]
    batched = gabor_kernel(5, *columns)
    assert isinstance(batched, torch.Tensor) and batched.shape == (3, 5, 5)
    np.testing.assert_allclose(batched.detach().numpy(), numpy_kernels, atol=1e-12)
    batched.sum().backward()
    assert all(c.grad is not None and torch.isfinite(c.grad).all() for c in columns)
    as_float = gabor_kernel(5, torch.tensor(30.0), 4.0, 0.0)
    assert as_float.dtype == torch.float32


def test_phase_is_in_degrees_and_a_half_turn_negates_it() -> None:
    even = gabor_kernel(5, 90.0, 4.0, 0.0, 1.2, 0.5)
    odd = gabor_kernel(5, 90.0, 4.0, 90.0, 1.2, 0.5)
    np.testing.assert_allclose(even, even[:, ::-1], atol=1e-12)  # a vertical line: symmetric
    np.testing.assert_allclose(odd, -odd[:, ::-1], atol=1e-12)  # one side of it: antisymmetric
    np.testing.assert_allclose(
        gabor_kernel(5, 200.0, 4.0, 30.0, 1.2, 0.5), gabor_kernel(5, 20.0, 4.0, -30.0, 1.2, 0.5),
        atol=1e-12,
    )  # fmt: skip


def test_gabor_fit_recovers_parameters_and_flags_noise() -> None:
    fit = gabor_fit(gabor_kernel(5, 30.0, 4.0, 40.0, 1.2, 0.6))
    assert fit.r2 > 0.999 and fit.orientation == pytest.approx(30.0, abs=0.5)
    assert fit.phase == pytest.approx(40.0, abs=1.0) and not fit.noise_like
    noise = gabor_fit(np.random.default_rng(0).normal(size=(5, 5)))
    assert noise.noise_like and noise.r2 < fit.r2


@pytest.mark.parametrize(
    "params",
    [(0.0, 4.0, 0.0, 1.2, 0.5), (75.0, 6.0, 60.0, 1.5, 0.8), (160.0, 3.0, 115.0, 1.0, 0.4)],
)
def test_gabor_fit_finds_every_orientation(params: tuple[float, ...]) -> None:
    fit = gabor_fit(gabor_kernel(5, *params))
    turn = abs((fit.orientation - params[0] + 90) % 180 - 90)
    assert fit.r2 > 0.99 and turn < 2.0


@pytest.mark.parametrize("orientation", [10.0, 100.0, 170.0])
@pytest.mark.parametrize("phase", [90.0, 270.0])
def test_a_centred_fit_says_the_side(orientation: float, phase: float) -> None:
    """An odd Gabor at any orientation is found with its phase, orientation in [0, 180)."""
    fit = gabor_fit(gabor_kernel(5, orientation, 4.0, phase, 1.2, 0.5), centred=True)
    assert fit.r2 > 0.999 and 0 <= fit.orientation < 180
    assert fit.orientation == pytest.approx(orientation, abs=0.5)
    assert fit.phase == pytest.approx(phase, abs=1.0)


def test_a_zero_mean_fit_explains_a_zero_mean_gabor() -> None:
    """HandNet's filters are Gabors less their mean: a zero-mean fit explains them whole."""
    k = gabor_kernel(5, 45.0, 4.0, 0.0, 1.2, 0.5)
    k = k - k.mean()
    fit = gabor_fit(k, zero_mean=True, centred=True)
    assert fit.r2 > 0.9999 and fit.orientation == pytest.approx(45.0, abs=0.1)
    assert gabor_fit(k).r2 < fit.r2


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("zero_mean", [False, True])
@pytest.mark.parametrize("n", [6, 8])
def test_jacobian_matches_finite_differences(seed: int, zero_mean: bool, n: int) -> None:
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(5, 5))
    low, high = [0, 2, -3, 0.8, 0.3, -2, -1, -1][:n], [180, 10, 3, 3, 1.5, 2, 1, 1][:n]
    p = rng.uniform(low, high)
    steps = np.eye(n) * 1e-6
    numeric = np.stack(
        [(_residual(p + e, target, zero_mean) - _residual(p - e, target, zero_mean)) / 2e-6
         for e in steps],
        axis=1,
    )  # fmt: skip
    assert np.allclose(_jacobian(p, target, zero_mean), numeric, atol=1e-7)
