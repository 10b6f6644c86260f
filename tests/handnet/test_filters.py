"""Analytic filters: the angle convention of the line and edge detectors, descriptions. The
Gabor kernel itself (known values, scikit-image) is tested with dissect's gabor module."""

from __future__ import annotations

import torch

from handnet.filters import (
    GaborSpec,
    describe_gabor,
    edge_detector,
    line_detector,
    spec_kernel,
)


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
    # at the probes' in-between angles, dissect's own words (a compiled net reads as its words)
    assert describe_gabor(22.5, 0.0) == "line at 22.5 degrees"
    assert describe_gabor(157.5, 180.0) == "dark line at 157.5 degrees"
    assert describe_gabor(37.4, 0.0) == "line at 37 degrees"


def test_spec_kernel_is_a_float32_tensor_like_the_layers() -> None:
    k = spec_kernel(GaborSpec(30.0, 4.0, -90.0, 1.2, 0.5), zero_mean=False)
    assert isinstance(k, torch.Tensor) and k.dtype == torch.float32 and k.shape == (5, 5)
    assert abs(spec_kernel(GaborSpec(30.0)).sum().item()) < 1e-5
