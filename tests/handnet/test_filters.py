"""Analytic filters: known values, scikit-image's Gabor, the angle convention, descriptions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.filters import gabor_kernel as sk_gabor

from handnet.filters import (
    describe_gabor,
    edge_detector,
    gabor_kernel,
    line_detector,
)


def test_known_values() -> None:
    k = gabor_kernel(5, 0.0, 4.0, 0.0, 1.0, 1.0)
    assert k[2, 2].item() == pytest.approx(1.0)
    # one pixel above the centre of a horizontal line: u = 1, cos(pi/2) = 0
    assert k[1, 2].item() == pytest.approx(0.0, abs=1e-6)
    # two pixels above: envelope exp(-2), cos(pi) = -1
    assert k[0, 2].item() == pytest.approx(-math.exp(-2.0))
    # along the line, only the envelope with aspect 1: exp(-1/2)
    assert k[2, 3].item() == pytest.approx(math.exp(-0.5))


@pytest.mark.parametrize("orientation", [0.0, 30.0, 45.0, 90.0, 135.0])
@pytest.mark.parametrize("phase", [0.0, -90.0, 60.0])
def test_matches_skimage(orientation: float, phase: float) -> None:
    lam, sigma, aspect, size = 4.0, 1.5, 0.6, 7
    ours = gabor_kernel(size, orientation, lam, phase, sigma, aspect).numpy()
    # scikit-image: y grows downwards and theta is the modulation direction.
    theirs = sk_gabor(1 / lam, theta=-math.radians(orientation + 90), sigma_x=sigma,
                      sigma_y=sigma / aspect, n_stds=6, offset=math.radians(phase))  # fmt: skip
    r, c = theirs.shape[0] // 2, theirs.shape[1] // 2
    crop = theirs.real[r - 3 : r + 4, c - 3 : c + 4] * 2 * math.pi * sigma * sigma / aspect
    np.testing.assert_allclose(ours, crop, atol=1e-6)


def test_line_orientations_follow_the_convention() -> None:
    """``/`` is 45 degrees: the line detector at 45 is largest along the anti-diagonal."""
    k = line_detector(45.0)
    assert k[0, 4] > k[0, 0] and k[4, 0] > k[4, 4]
    k = line_detector(135.0)
    assert k[0, 0] > k[0, 4]
    assert torch.argmax(line_detector(90.0)[2]).item() == 2  # vertical: centre column
    assert torch.argmax(line_detector(0.0)[:, 2]).item() == 2  # horizontal: centre row
    assert abs(line_detector(0.0).sum().item()) < 1e-5


def test_edge_detector_fires_on_its_side() -> None:
    """ "Left side of a vertical line": the response to a bright vertical line is largest just
    left of it."""
    image = torch.zeros(1, 1, 9, 9)
    image[..., 4] = 1.0
    out = torch.nn.functional.conv2d(image, edge_detector(180.0)[None, None], padding=2)[0, 0, 4]
    assert out.argmax().item() < 4
    out = torch.nn.functional.conv2d(image, edge_detector(0.0)[None, None], padding=2)[0, 0, 4]
    assert out.argmax().item() > 4


def test_descriptions() -> None:
    assert describe_gabor(45.0, 0.0) == "line at 45 degrees"
    assert describe_gabor(90.0, 0.0) == "vertical line"
    assert describe_gabor(180.0, 0.0) == "horizontal line"
    assert describe_gabor(90.0, 90.0) == "left side of a vertical line"
    assert describe_gabor(90.0, -90.0) == "right side of a vertical line"
    assert describe_gabor(0.0, 90.0) == "top side of a horizontal line"
    assert describe_gabor(135.0, 180.0) == "dark line at 135 degrees"


def test_matches_dissects_gabor() -> None:
    """The torch formula here (differentiable, for GaborConv2d) equals dissect's numpy one."""
    from dissect.gabor import gabor_kernel as dissect_gabor

    for orientation, phase in ((0.0, 0.0), (45.0, 90.0), (120.0, -30.0)):
        ours = gabor_kernel(5, orientation, 4.0, phase, 1.3, 0.5).numpy()
        theirs = dissect_gabor(5, orientation, 4.0, math.radians(phase), 1.3, 0.5)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
