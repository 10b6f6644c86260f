"""The written bank: the wide bank opens with the default one, its new filters fire where
their words say, its new rules answer their strokes as computed by hand, and dissect reads it
as written."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handnet.bank import (
    BESIDE,
    DIAGONAL_SIDE_WIDTH,
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


def test_each_wide_rule_kernel_is_its_terms_formula() -> None:
    """Every rule past the default sixteen: its kernel row for each conv1 channel is the sum of
    its terms' signed strengths times their profiles (no other weight), and no bias."""
    rules = wide_rules()[16:]
    conv = RuleConv2d(16, list(rules))
    for o, rule in enumerate(rules):
        expected = torch.zeros(16, 5, 5)
        for t in rule.terms:
            expected[t.inner] += t.sign * t.strength * _profile(t)
        torch.testing.assert_close(conv.weight[o].detach(), expected, rtol=1e-5, atol=1e-6)
    assert float(conv.bias.detach().abs().sum()) == 0.0


def test_a_lone_line_rule_answers_the_outer_stroke_of_a_pair_as_computed_by_hand() -> None:
    """'horizontal line, ..., with no horizontal line 4 pixels above it': on a single horizontal
    line (conv1's channel 0 on the centre row) the output at the centre is the reinforcing
    term's mass on that row minus the negating term's, 2 pixels up; with a second line 2
    pixels above, the lower line also gets both terms' masses on that row (mostly the
    negating one's), and the
    upper line, with nothing above it, keeps the single line's answer (and the reinforcing
    term's tail on the lower line)."""
    index = 16 + [r.description for r in wide_rules()[16:]].index(
        "horizontal line, broadly tuned (with the lines at 22.5 and 157.5 degrees), with no "
        "horizontal line 4 pixels above it, suppressing the lines 45 degrees off it"
    )
    rule = wide_rules()[index]
    plus, minus = rule.terms[:2]
    assert (plus.inner, minus.inner, minus.sign, minus.dy) == (0, 0, -1, BESIDE)
    x = torch.zeros(1, 16, 9, 9)
    x[0, 0, 4, :] = 1.0
    single = _one_rule(index)(x)[0, 0, 4, 4]
    by_hand = plus.strength * _profile(plus)[2].sum() - minus.strength * _profile(minus)[2].sum()
    torch.testing.assert_close(single, by_hand, rtol=1e-5, atol=1e-6)
    x[0, 0, 2, :] = 1.0  # a second line two pixels above (rows count down)
    out = _one_rule(index)(x)[0, 0]
    lower = by_hand + sum(t.sign * t.strength * _profile(t)[0].sum() for t in (plus, minus))
    torch.testing.assert_close(out[4, 4], lower, rtol=1e-5, atol=1e-6)
    upper = single + sum(t.sign * t.strength * _profile(t)[4].sum() for t in (plus, minus))
    torch.testing.assert_close(out[2, 4], upper, rtol=1e-5, atol=1e-6)
    assert out[2, 4] > 2 * out[4, 4]  # the outer stroke is what it answers


def test_an_end_rule_answers_a_line_ending_at_the_centre_as_computed_by_hand() -> None:
    """'right end of a horizontal line': a horizontal line from the left edge to the centre
    answers with the reinforcing term's mass on the columns up to the centre, minus the
    negating term's there (2 pixels ahead); a whole line answers much less, and a line ending
    the other way (the left end) less still."""
    index = 16 + [r.description.split(",")[0] for r in wide_rules()[16:]].index(
        "right end of a horizontal line"
    )
    rule = wide_rules()[index]
    plus, minus = rule.terms[:2]
    assert minus.dx == BESIDE and plus.dx == -0.5
    x = torch.zeros(1, 16, 9, 9)
    x[0, 0, 4, :5] = 1.0  # up to the centre, column 4
    end = _one_rule(index)(x)[0, 0, 4, 4]
    by_hand = (plus.strength * _profile(plus)[2, :3].sum()
               - minus.strength * _profile(minus)[2, :3].sum())  # fmt: skip
    torch.testing.assert_close(end, by_hand, rtol=1e-5, atol=1e-6)
    x[0, 0, 4, :] = 1.0
    whole = _one_rule(index)(x)[0, 0, 4, 4]
    x[0, 0, 4, :4] = 0.0  # from the centre to the right edge: its left end
    left = _one_rule(index)(x)[0, 0, 4, 4]
    assert end > 2 * whole and whole > left


def test_the_wide_bank_reads_as_written() -> None:
    """Every channel of --widths 16,48 is read by dissect's probes in its written words: the
    16 filters and the 48 rules, the lone lines and sides and the line ends among them."""
    table = written_and_read(HandNet(default_config(MAX_WIDTHS)).eval())
    counts = agreement(table)
    assert counts["all"]["agreeing"] == 64, table[~table["agrees"]][["written", "read"]]
