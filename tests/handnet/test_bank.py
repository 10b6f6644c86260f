"""The written bank: the wide bank opens with the default one, its new filters fire where
their words say, its new rules answer their strokes as computed by hand, and dissect reads it
as written."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handnet.bank import (
    DIAGONAL_SIDE_WIDTH,
    RULE_GAIN,
    default_conv1,
    default_rules,
    wide_conv1,
    wide_rules,
)
from handnet.filters import spec_kernel
from handnet.layers import RuleConv2d, spatial_profile
from handnet.model import MAX_WIDTHS, HandNet, default_config
from handnet.readable import agreement, written_and_read


def test_the_wide_bank_opens_with_the_default_one() -> None:
    assert wide_conv1()[:8] == default_conv1() and len(wide_conv1()) == MAX_WIDTHS[0]
    assert wide_rules()[:16] == default_rules() and len(wide_rules()) == MAX_WIDTHS[1]
    net = HandNet(default_config(MAX_WIDTHS))
    assert net.fc4.in_features == 48 * 7 * 7 == 2352  # under two thirds of scattering's 3,969
    assert all(r.bias == 0.0 for r in wide_rules())  # no threshold written anywhere
    assert all(0 <= t.inner < 16 for r in wide_rules() for t in r.terms)
    assert all(t.inner < 8 for r in wide_rules()[:16] for t in r.terms)  # 8,16 stands alone


def test_a_diagonal_side_filter_fires_on_its_side_of_the_line() -> None:
    """'upper-left side of a line at 45 degrees': on a bright / line through the centre, the
    response is larger one pixel up-left of the line than one pixel down-right of it."""
    image = torch.zeros(1, 1, 15, 15)
    for i in range(15):
        image[0, 0, 14 - i, i] = 1.0  # row 14 - i: a / line (rows count down)
    names = ["upper-left side of a line at 45 degrees", "lower-right side of a line at 45 degrees"]
    for spec, name, sign in zip(wide_conv1()[8:10], names, (1, -1), strict=True):
        assert (
            HandNet(default_config(MAX_WIDTHS)).descriptions()["conv1"][wide_conv1().index(spec)]
            == name
        )
        kernel = spec_kernel(spec)[None, None]
        out = F.conv2d(image, kernel, padding=2)[0, 0]
        up_left, down_right = out[6, 6], out[8, 8]  # (7, 7) is on the line
        assert sign * (up_left - down_right) > 0, (name, up_left, down_right)
    assert spec.wavelength == 2 * DIAGONAL_SIDE_WIDTH


def _one_rule(index: int) -> RuleConv2d:
    return RuleConv2d(16, [wide_rules()[index]])


def _profile(term) -> torch.Tensor:  # type: ignore[no-untyped-def]
    f = torch.tensor
    return spatial_profile(5, f([term.orientation]), f([term.length]), f([term.width]),
                           f([term.dx]), f([term.dy]))[0]  # fmt: skip


def test_a_long_line_rule_answers_a_long_line_as_computed_by_hand() -> None:
    """'horizontal line, over a long stretch' (rule 25): on a horizontal line map, the output at
    the centre is the gain times the profile's mass on the centre row (nothing negated), and a
    stroke of one pixel gives only the centre's share of it."""
    index = 16 + 4 + 4  # after the diagonal sides and the broadly tuned lines
    rule = wide_rules()[index]
    assert rule.description == "horizontal line, over a long stretch"
    x = torch.zeros(1, 16, 9, 9)
    x[0, 0, 4, :] = 1.0  # conv1's horizontal line channel, along the centre row
    out = _one_rule(index)(x)[0, 0, 4, 4]
    line = rule.terms[0]
    assert line.length == 3.0 and line.strength == RULE_GAIN
    torch.testing.assert_close(out, RULE_GAIN * _profile(line)[2, :].sum(), rtol=1e-5, atol=1e-6)
    x[0, 0, 4, :] = 0.0
    x[0, 0, 4, 4] = 1.0
    short = _one_rule(index)(x)[0, 0, 4, 4]
    torch.testing.assert_close(short, RULE_GAIN * _profile(line)[2, 2], rtol=1e-5, atol=1e-6)
    assert out > 2.5 * short  # the long stretch is what it answers


def test_a_large_corner_answers_its_arms_away_from_the_centre() -> None:
    """'corner opening down-right, large': a horizontal line going right and a vertical one
    going down, each term 2.5 pixels out; by hand, the output is the sum of the two terms'
    masses on the arms (pixels in the kernel's frame, y up: row 2 - dy)."""
    index = [r.description for r in wide_rules()].index("corner opening down-right, large")
    rule = wide_rules()[index]
    x = torch.zeros(1, 16, 9, 9)
    x[0, 0, 4, 4:] = 1.0  # horizontal arm from the centre to the right
    x[0, 2, 4:, 4] = 1.0  # vertical arm from the centre down
    out = _one_rule(index)(x)[0, 0, 4, 4]
    h, v = rule.terms
    expected = h.strength * _profile(h)[2, 2:].sum() + v.strength * _profile(v)[2:, 2].sum()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    mirrored = torch.flip(x, dims=(3,))  # the corner opening down-left: its arm going left
    left = _one_rule(index)(mirrored)[0, 0, 4, 4]
    by_hand = h.strength * _profile(h)[2, :3].sum() + v.strength * _profile(v)[2:, 2].sum()
    torch.testing.assert_close(left, by_hand, rtol=1e-5, atol=1e-6)
    assert left < 0.75 * out


def test_the_wide_bank_reads_as_written() -> None:
    """At least 90 % of the channels of --widths 16,48 are read by dissect's probes in their
    written words: all 16 filters and 46 of 48 rules; the two thick lines (horizontal and
    vertical, from the sides of a stroke) answer a curve's top as much as a straight line."""
    table = written_and_read(HandNet(default_config(MAX_WIDTHS)).eval())
    counts = agreement(table)
    assert counts["conv1"]["agreeing"] == 16 and counts["all"]["share"] >= 0.9, counts
    missed = table[~table["agrees"]]["written"].str.split(",").str[0].tolist()
    assert missed == ["horizontal line", "vertical line"], missed
