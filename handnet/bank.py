"""HandNet's written bank: the first-layer filters and the rules over them, in the order that
``--widths`` cuts them.

- :func:`default_conv1` (8 filters) and :func:`default_rules` (16 rules over them): lines,
  corners, sides and curves; ``--widths 8,16``, the pruned net's widths.
- :func:`wide_conv1` (16) and :func:`wide_rules` (48) open with those and add the sides of the
  diagonal lines and the in-between line orientations, and rules about the stroke's
  neighbourhood: lines and sides with none of their kind beside them on one side (the outer
  stroke of a pair, the outer edge of the ink) and the two ends of each line (end-stops):
  ``--widths 16,48``, whose readout sees 48 x 7 x 7 = 2,352 features.
- :func:`carry_rules`: a third layer that carries conv2 forward; :func:`with_context`: the
  cancelling pairs that constrained fine-tuning may grow.

Every number here is written, none fitted: no gradient and no search on data sets a rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace

from handnet.filters import GaborSpec, edge_detector_spec, line_detector_spec
from handnet.layers import Rule, Term

__all__ = [
    "default_conv1",
    "default_rules",
    "wide_conv1",
    "wide_rules",
    "carry_rules",
    "with_context",
    "RULE_GAIN",
    "CONTEXT_STRENGTH",
]


def default_conv1() -> tuple[GaborSpec, ...]:
    """Four even line detectors (0, 45, 90, 135 degrees), then four odd ones for the sides
    of horizontal and vertical lines (top, bottom, left, right)."""
    lines = tuple(line_detector_spec(o) for o in (0.0, 45.0, 90.0, 135.0))
    sides = tuple(edge_detector_spec(s) for s in (90.0, 270.0, 180.0, 0.0))
    return lines + sides


# conv1 channel indices of default_conv1
_H, _D45, _V, _D135, _TOP, _BOTTOM, _LEFT, _RIGHT = range(8)
_LINE = {0: _H, 45: _D45, 90: _V, 135: _D135}
_NAME = {0: "horizontal line", 45: "line at 45 degrees", 90: "vertical line",
         135: "line at 135 degrees"}  # fmt: skip


def _t(inner: int, sign: int = 1, strength: float = 1.0, orientation: float | None = None,
       dx: float = 0.0, dy: float = 0.0, length: float = 1.5, width: float = 0.7) -> Term:  # fmt: skip
    """A term whose profile runs along the inner channel's own orientation unless told."""
    if orientation is None:
        orientation = {v: k for k, v in _LINE.items()}.get(inner, 0.0)
    return Term(inner, sign, strength, float(orientation), length, width, dx, dy)


def _suppressing(lines: Sequence[int]) -> tuple[Term, ...]:
    """The ``lines`` (conv1 line channels) negated under the centre at half strength: the line
    across a line rule; in the wide bank, what a curve or a corner is built from, so that a
    rule about one straight stroke stays one."""
    return tuple(_t(k, -1, 0.5, length=1.0, width=1.0) for k in lines)


def _line_rules(bias: float = 0.0) -> list[Rule]:
    """The four oriented lines, each reinforced along itself and suppressing the line across
    it."""
    return [Rule(f"{_NAME[o]}, reinforced along itself, suppressing the {_NAME[(o + 90) % 180]}",
                 (_t(j, 1, 1.0, length=2.0), *_suppressing([_LINE[(o + 90) % 180]])), bias)
            for o, j in _LINE.items()]  # fmt: skip


_CORNER_WORDS = {
    "down-right": "(a horizontal line going right, a vertical one going down)",
    "down-left": "(horizontal line going left, vertical going down)",
    "up-right": "(horizontal line going right, vertical going up)",
    "up-left": "(horizontal line going left, vertical going up)",
}


def _corner_rules(bias: float = 0.0, d: float = 1.5) -> list[Rule]:
    """The four corners: a horizontal and a vertical line, each ``d`` pixels out from the
    centre, described by their arms."""
    corners = (("down-right", d, -d), ("down-left", -d, -d), ("up-right", d, d), ("up-left", -d, d))
    return [Rule(f"corner opening {name} {_CORNER_WORDS[name]}",
                 (_t(_H, dx=hx), _t(_V, dy=vy)), bias) for name, hx, vy in corners]  # fmt: skip


# The sides of horizontal and vertical lines: (name, the side's channel, the opposite side's
# channel, the line's orientation).
_SIDES = (("top side of a horizontal line", _TOP, _BOTTOM, 0.0),
          ("bottom side of a horizontal line", _BOTTOM, _TOP, 0.0),
          ("left side of a vertical line", _LEFT, _RIGHT, 90.0),
          ("right side of a vertical line", _RIGHT, _LEFT, 90.0))  # fmt: skip
_SIDE_WORDS = ", reinforced along it, suppressing the opposite side"


def _side_rules(bias: float = 0.0) -> list[Rule]:
    """Each side reinforced along its line, suppressing the opposite side."""
    return [Rule(f"{name}{_SIDE_WORDS}",
                 (_t(j, orientation=o, length=2.0), _t(k, -1, 0.5, orientation=o)), bias)
            for name, j, k, o in _SIDES]  # fmt: skip


_CURVE_WORDS = {
    "down": "(top of a loop: / on the left, \\ on the right)",
    "up": "(bottom of a loop: \\ on the left, / on the right)",
    "right": "(left of a loop: / above, \\ below)",
    "left": "(right of a loop: \\ above, / below)",
}


def _curve_rules(bias: float = 0.0, d: float = 1.5, o: float = 0.5) -> list[Rule]:
    """The four curves: two diagonals ``d`` pixels either side of the centre, and the line
    across them ``o`` pixels further in (``o`` out, for the diagonals), described by their
    parts."""
    terms = {
        "down": (_t(_D45, dx=-d, dy=-o), _t(_D135, dx=d, dy=-o), _t(_H, 1, 0.5, dy=o)),
        "up": (_t(_D135, dx=-d, dy=o), _t(_D45, dx=d, dy=o), _t(_H, 1, 0.5, dy=-o)),
        "right": (_t(_D45, dx=-o, dy=d), _t(_D135, dx=-o, dy=-d), _t(_V, dx=-o)),
        "left": (_t(_D135, dx=o, dy=d), _t(_D45, dx=o, dy=-d), _t(_V, dx=o)),
    }
    return [Rule(f"curve opening {name} {_CURVE_WORDS[name]}", parts, bias)
            for name, parts in terms.items()]  # fmt: skip


RULE_GAIN = 4.0  # scales every rule so that conv2's pooled outputs are of order 1
# Context pairs cancel exactly whatever their strength; a strength of the order of the written
# terms lets fine-tuning (which moves log-strengths) grow a difference within a few epochs.
CONTEXT_STRENGTH = 2.0


def default_rules(
    bias: float = 0.0, side_bias: float = 0.0, gain: float = RULE_GAIN
) -> tuple[Rule, ...]:
    """Sixteen conv2 rules over :func:`default_conv1`: four oriented lines, four corners, the
    four sides of horizontal and vertical strokes, four curves (strengths and biases times
    ``gain``).

    No threshold by default: a rule fires wherever its reinforcing evidence outweighs its
    negating evidence, in proportion to the excess. The inputs are ReLU outputs, so a rule with
    nothing negated passes its evidence whole. Thresholds of half a stroke's response (bias
    -0.5, sides -0.2, the earlier defaults) silenced the line rules on all but 1 to 5 % of
    positions and cost the readout 1 point (96.4 against 97.4 % on mnist-5k's test digits, the
    head fitted as :func:`handnet.head.fit_head` fits it); without them dissect still reads
    every rule as written, and the carried corners of a third layer too (40 of 40 channels at
    8,16,16, where they were read as curves)."""
    rules = _line_rules(bias) + _corner_rules(bias) + _side_rules(side_bias) + _curve_rules(bias)
    return _scaled(rules, gain)


def _scaled(rules: list[Rule], gain: float) -> tuple[Rule, ...]:
    """``rules`` with every strength and bias times ``gain``."""
    return tuple(
        Rule(r.description, tuple(replace(t, strength=t.strength * gain) for t in r.terms),
             r.bias * gain)
        for r in rules
    )  # fmt: skip


# wide_conv1's channels after default_conv1's: the four sides of the diagonal lines, then lines
# at the four in-between orientations
_UL45, _LR45, _UR135, _LL135 = range(8, 12)
_L22, _L67, _L112, _L157 = range(12, 16)
_IN_BETWEEN = {_L22: 22.5, _L67: 67.5, _L112: 112.5, _L157: 157.5}  # their orientations
# A diagonal side filter is as wide as a step edge (3 px, wavelength 6: the compiled
# explanation's EDGE_WIDTH); at the lines' 2 px its staircase answers the diagonal line more
# than the side, and dissect read all four as lines.
DIAGONAL_SIDE_WIDTH = 3.0
_DIAGONAL_SIDES = (("upper-left side of a line at 45 degrees", _UL45, _LR45, 45.0, 135.0),
                   ("lower-right side of a line at 45 degrees", _LR45, _UL45, 45.0, 315.0),
                   ("upper-right side of a line at 135 degrees", _UR135, _LL135, 135.0, 45.0),
                   ("lower-left side of a line at 135 degrees", _LL135, _UR135, 135.0, 225.0))  # fmt: skip


def wide_conv1() -> tuple[GaborSpec, ...]:
    """:func:`default_conv1`, then the four sides of the diagonal lines (upper-left and
    lower-right of /, upper-right and lower-left of \\) and lines at 22.5, 67.5, 112.5 and
    157.5 degrees: sixteen filters."""
    sides = tuple(edge_detector_spec(s, DIAGONAL_SIDE_WIDTH) for *_, s in _DIAGONAL_SIDES)
    lines = tuple(line_detector_spec(o) for o in _IN_BETWEEN.values())
    return default_conv1() + sides + lines


# How far (pixels of conv2's input, the image at half resolution) the wide bank's rules look for
# the same stroke beside a stroke, or ahead of its end: 2, four image pixels, a stroke and a gap.
BESIDE = 2.0
# For each line orientation, its two sides in words, the first the one its normal (the
# orientation + 90 degrees) points to (y up): above a horizontal line, left of a vertical one.
_FLANKS = {
    0.0: ("above it", "below it"),
    45.0: ("above-left of it", "below-right of it"),
    90.0: ("to its left", "to its right"),
    135.0: ("below-left of it", "above-right of it"),
}
# For each line orientation, its two ends, the first the one its direction points to.
_ENDS = {0.0: ("right end", "left end"), 45.0: ("upper-right end", "lower-left end"),
         90.0: ("top end", "bottom end"), 135.0: ("upper-left end", "lower-right end")}  # fmt: skip


def _unit(degrees: float) -> tuple[float, float]:
    return math.cos(math.radians(degrees)), math.sin(math.radians(degrees))


# For each line channel, the two in-between lines (wide_conv1's) 22.5 degrees either side of it.
_NEAR = {_H: (_L22, _L157), _D45: (_L22, _L67), _V: (_L67, _L112), _D135: (_L112, _L157)}


def _lone_line_rules() -> list[Rule]:
    """Each of the four lines, broadly tuned (the in-between lines either side reinforce it at
    half strength), with none of its kind :data:`BESIDE` pixels to one side (each side in
    turn), suppressing the two lines 45 degrees off it: the outer one of two parallel strokes,
    or a stroke alone."""
    rules = []
    for o, j in _LINE.items():
        nx, ny = _unit(o + 90)
        near = tuple(_t(k, 1, 0.5, o, length=2.0) for k in _NEAR[j])
        off = _suppressing([_LINE[(o + 45) % 180], _LINE[(o + 135) % 180]])
        a, b = (_IN_BETWEEN[k] for k in _NEAR[j])
        for sign, flank in zip((1, -1), _FLANKS[o], strict=True):
            rules.append(Rule(
                f"{_NAME[o]}, broadly tuned (with the lines at {a:g} and {b:g} degrees), with no "
                f"{_NAME[o]} {2 * BESIDE:g} pixels {flank}, suppressing the lines 45 degrees off it",
                (_t(j, length=2.0), _t(j, -1, 1.0, dx=sign * BESIDE * nx, dy=sign * BESIDE * ny))
                + near + off))  # fmt: skip
    return rules


def _lone_side_rules() -> list[Rule]:
    """Each of the eight sides, with no such side :data:`BESIDE` pixels to one side (each side
    in turn), suppressing the opposite side: the outer edge of the ink."""
    sides = [*_SIDES, *(side[:4] for side in _DIAGONAL_SIDES)]
    rules = []
    for name, j, k, o in sides:
        nx, ny = _unit(o + 90)
        for sign, flank in zip((1, -1), _FLANKS[o], strict=True):
            rules.append(Rule(
                f"{name}, with no such side {2 * BESIDE:g} pixels {flank}, suppressing the "
                "opposite side",
                (_t(j, orientation=o, length=2.0),
                 _t(j, -1, 1.0, o, sign * BESIDE * nx, sign * BESIDE * ny),
                 _t(k, -1, 0.5, orientation=o))))  # fmt: skip
    return rules


def _end_rules() -> list[Rule]:
    """Both ends of each of the four lines: the line here and half a pixel back, none of it
    :data:`BESIDE` pixels ahead, suppressing the lines of the other orientations (an end-stop;
    a corner's or a curve's end answers only as far as it ends as a straight line)."""
    rules = []
    for o, j in _LINE.items():
        ax, ay = _unit(o)
        off = _suppressing([k for p, k in _LINE.items() if p != o])
        for sign, end in zip((1, -1), _ENDS[o], strict=True):
            rules.append(Rule(
                f"{end} of a {_NAME[o]}, suppressing the lines of every other orientation",
                (_t(j, dx=-0.5 * sign * ax, dy=-0.5 * sign * ay),
                 _t(j, -1, 1.0, dx=sign * BESIDE * ax, dy=sign * BESIDE * ay)) + off))  # fmt: skip
    return rules


def _wide_extra_rules() -> list[Rule]:
    """The 32 rules :func:`wide_rules` adds (biases 0, before the gain)."""
    return _lone_line_rules() + _lone_side_rules() + _end_rules()


def wide_rules(gain: float = RULE_GAIN) -> tuple[Rule, ...]:
    """Forty-eight rules over :func:`wide_conv1`: :func:`default_rules`, then the four lines
    and the eight sides each with none of its kind beside it, one side at a time (24), and the
    two ends of each of the four lines (8) (strengths times ``gain``; no threshold, as
    :func:`default_rules`).

    Where this bank came from: the rules it replaced (long, thick and broadly tuned lines,
    large corners and curves, the diagonals' sides) added little to the default sixteen; a
    second layer trained over the same written filters, one filter per channel, reached the
    scattering anchor, and what it had learnt was mostly a difference across the filter's
    orientation (``benchmarks/bench_handnet_ceiling.py``). Written as a stroke with none of
    its kind beside it, and as end-stops, it was chosen over the bank before it by 4-fold
    cross-validation on the training digits (68 against 82 errors of 4,000) and the
    validation digits (97.87 against 97.67 %, three head draws); no test digit decided it."""
    return default_rules(gain=gain) + _scaled(_wide_extra_rules(), gain)


def with_context(rules: tuple[Rule, ...], in_channels: int) -> tuple[Rule, ...]:
    """Give every rule, for each inner channel, a reinforcing and a negating term with the
    same isotropic profile: they cancel exactly, so the hand-built net is unchanged, and
    fine-tuning may grow either (the written terms stay the rule; on a channel the rule names,
    the pair can reshape its written profile)."""
    out = []
    for r in rules:
        extra = tuple(
            Term(j, sign, CONTEXT_STRENGTH, 0.0, 1.0, 1.0, context=True)
            for j in range(in_channels)
            for sign in (1, -1)
        )
        out.append(Rule(r.description, r.terms + extra, r.bias))
    return tuple(out)


def carry_rules(inner: int, width: int, bias: float = 0.0, gain: float = RULE_GAIN,
                names: Sequence[str] = ()) -> tuple[Rule, ...]:  # fmt: skip
    """conv3 rules over ``inner`` conv2 channels: channel ``j`` carries conv2's channel ``j``
    forward on a wider footprint (the pooled map is half as fine), so that conv3 starts as the
    copy of conv2 that the study found it to be; ``width`` at most ``inner``. With ``names``
    (conv2's written descriptions), each is described by what it carries, in the words of the
    channel it copies up to their first comma or parenthesis ("horizontal line (conv2 channel 1
    carried forward, ...)"), so that dissect's probes can check it. A copy needs no
    threshold: what it reads is already a ReLU's output, never negative, so with the bias 0 the
    ReLU after it passes the blurred channel whole (a threshold would drop its weak strokes, the
    only trace of them the readout gets after the third pooling)."""

    def words(j: int) -> str:
        what = f"conv2 channel {j + 1} carried forward, pooled over its neighbourhood"
        if j >= len(names):
            return what
        return f"{re.split(r'[,(]', names[j])[0].strip()} ({what})"

    return tuple(
        Rule(words(j), (Term(j, 1, gain, 0.0, 1.2, 1.2),), bias * gain) for j in range(width)
    )
