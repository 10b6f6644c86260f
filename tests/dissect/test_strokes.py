"""Descriptions of lines and edges checked on real strokes (dissect.strokes)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dissect.labels import describe_layer
from dissect.strokes import check_first_layer, description_check, stroke_orientation
from handnet.filters import edge_detector, line_detector
from tests.dissect.foreign_nets import tiny_data


class Filters(nn.Module):
    """One 5x5 conv layer holding the given kernels (no bias), pooled to a small readout."""

    def __init__(self, kernels: list[torch.Tensor]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, len(kernels), 5, padding=2, bias=False)
        self.fc = nn.Linear(len(kernels), 2)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.stack(kernels)[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_max_pool2d(F.relu(self.conv1(x)), 1).flatten(1))


def _stroke(angle: float, width: float = 2.0, off: float = 0.0, size: int = 7) -> torch.Tensor:
    """A bright line ``width`` px wide with soft sides, ``off`` px from the centre of a
    ``[1, size, size]`` patch, at ``angle`` degrees (counter-clockwise, up is up)."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    x, y = cols.double() - size // 2, size // 2 - rows.double()
    t = math.radians(angle)
    across = -x * math.sin(t) + y * math.cos(t) - off
    return torch.sigmoid((width / 2 - across.abs()) / 0.3)[None].float()


@pytest.mark.parametrize("angle", [0.0, 10.0, 20.0, 30.0, 45.0, 60.0, 70.0, 80.0, 90.0, 110.0,
                                   135.0, 160.0])  # fmt: skip
@pytest.mark.parametrize("off", [0.0, 1.5])
def test_the_structure_tensor_reads_a_line_at_its_angle(angle: float, off: float) -> None:
    # to within 1.5 degrees at every angle (central differences pulled 70 to 65 degrees)
    orientation, coherence, _ = stroke_orientation(_stroke(angle, off=off))
    gap = (float(orientation) - angle) % 180.0
    assert min(gap, 180.0 - gap) < 1.5 and float(coherence) > 0.9


@pytest.mark.parametrize(("bright", "towards"), [("right", 0.0), ("top", 90.0), ("left", 180.0),
                                                 ("bottom", -90.0)])  # fmt: skip
def test_the_intensity_rises_towards_the_bright_half(bright: str, towards: float) -> None:
    patch = torch.zeros(1, 7, 7)
    half = {"right": (slice(None), slice(4, None)), "top": (slice(None, 3), slice(None)),
            "left": (slice(None), slice(None, 3)), "bottom": (slice(4, None), slice(None))}  # fmt: skip
    patch[0][half[bright]] = 1.0
    _, _, rising = stroke_orientation(patch)
    gap = (float(rising) - towards) % 360.0
    assert min(gap, 360.0 - gap) < 1.0


def test_exact_line_and_edge_filters_are_described_and_confirmed_on_strokes() -> None:
    # line_detector(45): "/"; edge_detector(180): fires left of a bright vertical line
    net = Filters([line_detector(45.0), line_detector(135.0), edge_detector(180.0),
                   edge_detector(90.0)]).eval()  # fmt: skip
    table = describe_layer(net, "conv1")
    assert list(table["description"]) == [
        "line at 45 degrees (/)",
        "line at 135 degrees (\\)",
        "left side of a vertical line",
        "top side of a horizontal line",
    ]
    assert table["confident"].all()
    # each image holds two classes' strokes, so that, like a digit, it has strokes at several
    # orientations (on a lone horizontal line a "/" detector's peak says nothing about it)
    images, _ = tiny_data(10, seed=3)
    images = torch.maximum(images, images.roll(3, 0))
    checks = check_first_layer(net, table, images)
    assert [c.holds for c in checks] == [True] * 4, checks
    for channel, wrong in enumerate(["line at 135 degrees (\\)", "line at 45 degrees (/)",
                                     "right side of a vertical line",
                                     "bottom side of a horizontal line"]):  # fmt: skip
        check = description_check(net, "conv1", channel, wrong, images)
        assert check is not None and not check.holds, (wrong, check)
