"""HandNet: SimpleConvNet's shape built from readable parts.

conv1 is a :class:`~handnet.layers.GaborConv2d` (line and edge detectors), conv2 a
:class:`~handnet.layers.RuleConv2d` (each channel a written rule over conv1's channels), then
ReLU + 2x2 max-pooling after each and the linear head fc4 -> fc5 of SimpleConvNet. Layers named
in ``config.free`` are plain ``nn.Conv2d`` (after free fine-tuning); they keep the constructed
descriptions they started from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from handnet.filters import GaborSpec, edge_detector_spec, line_detector_spec
from handnet.layers import GaborConv2d, Rule, RuleConv2d, Term
from simpleconvnet.model import MNIST_MEAN, MNIST_STD, SimpleConvNet, SimpleConvNetConfig

__all__ = [
    "HandNet",
    "HandNetConfig",
    "default_config",
    "default_conv1",
    "default_rules",
    "with_context",
]

HAND_BUILT_KINDS = ("gabor", "rule")


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


def _line_rules(bias: float) -> list[Rule]:
    rules = []
    for o, j in _LINE.items():
        orth = _LINE[(o + 90) % 180]
        rules.append(Rule(f"{_NAME[o]}, reinforced along itself, suppressing the "
                          f"{_NAME[(o + 90) % 180]}",
                          (_t(j, 1, 1.0, length=2.0), _t(orth, -1, 0.5, length=1.0, width=1.0)),
                          bias))  # fmt: skip
    return rules


def _corner_rules(bias: float) -> list[Rule]:
    d = 1.5
    corners = (("corner opening down-right (a horizontal line going right, a vertical one going down)",
                d, -d), ("corner opening down-left (horizontal line going left, vertical going down)",
                -d, -d), ("corner opening up-right (horizontal line going right, vertical going up)",
                d, d), ("corner opening up-left (horizontal line going left, vertical going up)",
                -d, d))  # fmt: skip
    return [Rule(text, (_t(_H, dx=hx), _t(_V, dy=vy)), bias) for text, hx, vy in corners]


def _side_rules(bias: float) -> list[Rule]:
    sides = (("top side of a horizontal line, reinforced along it", _TOP, _BOTTOM, 0.0),
             ("bottom side of a horizontal line, reinforced along it", _BOTTOM, _TOP, 0.0),
             ("left side of a vertical line, reinforced along it", _LEFT, _RIGHT, 90.0),
             ("right side of a vertical line, reinforced along it", _RIGHT, _LEFT, 90.0))  # fmt: skip
    return [Rule(f"{text}, suppressing the opposite side",
                 (_t(j, orientation=o, length=2.0), _t(k, -1, 0.5, orientation=o)), bias)
            for text, j, k, o in sides]  # fmt: skip


def _curve_rules(bias: float) -> list[Rule]:
    d = 1.5
    return [
        Rule("curve opening down (top of a loop: / on the left, \\ on the right)",
             (_t(_D45, dx=-d, dy=-0.5), _t(_D135, dx=d, dy=-0.5), _t(_H, 1, 0.5, dy=0.5)), bias),
        Rule("curve opening up (bottom of a loop: \\ on the left, / on the right)",
             (_t(_D135, dx=-d, dy=0.5), _t(_D45, dx=d, dy=0.5), _t(_H, 1, 0.5, dy=-0.5)), bias),
        Rule("curve opening right (left of a loop: / above, \\ below)",
             (_t(_D45, dx=-0.5, dy=d), _t(_D135, dx=-0.5, dy=-d), _t(_V, dx=-0.5)), bias),
        Rule("curve opening left (right of a loop: \\ above, / below)",
             (_t(_D135, dx=0.5, dy=d), _t(_D45, dx=0.5, dy=-d), _t(_V, dx=0.5)), bias),
    ]  # fmt: skip


RULE_GAIN = 4.0  # scales every rule so that conv2's pooled outputs are of order 1
# Context pairs cancel exactly whatever their strength; a strength of the order of the written
# terms lets fine-tuning (which moves log-strengths) grow a difference within a few epochs.
CONTEXT_STRENGTH = 2.0


def default_rules(
    bias: float = -0.5, side_bias: float = -0.2, gain: float = RULE_GAIN
) -> tuple[Rule, ...]:
    """Sixteen conv2 rules over :func:`default_conv1`: four oriented lines, four corners, the
    four sides of horizontal and vertical strokes, four curves (strengths and biases times
    ``gain``)."""
    rules = _line_rules(bias) + _corner_rules(bias) + _side_rules(side_bias) + _curve_rules(bias)
    return tuple(
        Rule(r.description, tuple(replace(t, strength=t.strength * gain) for t in r.terms),
             r.bias * gain)
        for r in rules
    )  # fmt: skip


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


@dataclass(frozen=True)
class HandNetConfig:
    """The structure of a HandNet: conv1's Gabor parameters, conv2's rules, the head's width.

    ``free`` names conv layers that were freed (plain ``nn.Conv2d``) by free fine-tuning.
    """

    conv1: tuple[GaborSpec, ...]
    conv2: tuple[Rule, ...]
    conv3: tuple[Rule, ...] = ()  # empty: no third conv layer (the pruned net dropped it)
    fc4: int = 128
    classes: int = 10
    kernel_size: int = 5
    zero_mean: bool = True
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    free: tuple[str, ...] = ()

    @property
    def convs(self) -> tuple[int, ...]:
        return (len(self.conv1), len(self.conv2)) + ((len(self.conv3),) if self.conv3 else ())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HandNetConfig:
        def rules(items: list[dict[str, Any]]) -> tuple[Rule, ...]:
            return tuple(
                Rule(r["description"], tuple(Term(**t) for t in r["terms"]), r["bias"])
                for r in items
            )

        conv1 = tuple(GaborSpec(**s) for s in d["conv1"])
        skip = ("conv1", "conv2", "conv3", "free", "layer_kinds", "descriptions")
        rest = {k: v for k, v in d.items() if k not in skip}
        return cls(conv1, rules(d["conv2"]), rules(d.get("conv3", [])),
                   free=tuple(d.get("free", ())), **rest)  # fmt: skip


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


def default_config(
    widths: tuple[int, ...] = (8, 16), fc4: int = 128, context: bool = True
) -> HandNetConfig:
    """The default bank cut to ``widths`` (at most 8 first-layer filters and 16 rules; a third
    width adds a conv3 of :func:`carry_rules`), with cancelling context terms
    (:func:`with_context`) unless ``context`` is False."""
    conv1, rules = default_conv1(), default_rules()
    ok = len(widths) in (2, 3) and 1 <= widths[0] <= len(conv1) and 1 <= widths[1] <= len(rules)
    if not ok or (len(widths) == 3 and not 1 <= widths[2] <= widths[1]):
        raise ValueError(
            f"HandNet widths {widths}: two or three widths, at most {len(conv1)}, {len(rules)} "
            f"and the second"
        )
    n1, n2 = widths[0], widths[1]
    kept = tuple(
        Rule(r.description, tuple(t for t in r.terms if t.inner < n1), r.bias) for r in rules[:n2]
    )
    conv3 = (carry_rules(n2, widths[2], names=[r.description for r in kept])
             if len(widths) == 3 else ())  # fmt: skip

    def ctx(rs: tuple[Rule, ...], inner: int) -> tuple[Rule, ...]:
        return with_context(rs, inner) if context and rs else rs

    return HandNetConfig(conv1[:n1], ctx(kept, n1), ctx(conv3, n2), fc4=fc4)


class HandNet(SimpleConvNet):
    """SimpleConvNet's shape and protocol with hand-constructed conv layers.

    ``forward(x: [N, 1, 28, 28]) -> [N, classes]`` log-probabilities.
    """

    architecture = "handnet.model:HandNet"
    config: HandNetConfig  # type: ignore[assignment]

    def __init__(self, config: HandNetConfig | None = None) -> None:
        config = config or default_config()
        super().__init__(
            SimpleConvNetConfig(
                convs=config.convs, fc4=config.fc4, classes=config.classes,
                kernel_size=config.kernel_size, mean=config.mean, std=config.std,
            )
        )  # fmt: skip
        self.config = config
        k = config.kernel_size
        conv1 = GaborConv2d(config.conv1, k, config.zero_mean)
        conv2 = RuleConv2d(len(config.conv1), config.conv2, k)
        conv2.inner_names = conv1.descriptions
        built: dict[str, GaborConv2d | RuleConv2d] = {"conv1": conv1, "conv2": conv2}
        if config.conv3:
            built["conv3"] = RuleConv2d(len(config.conv2), config.conv3, k)
            built["conv3"].inner_names = conv2.descriptions
        for name, layer in built.items():
            if name in config.free:
                conv = getattr(self, name)
                conv.descriptions = [f"{d} (freed)" for d in layer.descriptions]
            else:
                setattr(self, name, layer)

    def layer_kinds(self) -> dict[str, str]:
        """``{"conv1": "gabor", "conv2": "rule"[, "conv3": "rule"]}``, ``"free"`` for freed
        layers."""
        kinds = {"conv1": "gabor", "conv2": "rule", "conv3": "rule"}
        return {n: ("free" if n in self.config.free else kinds[n]) for n in self.conv_names}

    def descriptions(self) -> dict[str, list[str]]:
        """Every conv layer's channel descriptions, by layer name."""
        return {n: list(getattr(self, n).descriptions) for n in self.conv_names}

    def current_config(self) -> HandNetConfig:
        """The config with the hand-built layers' *current* parameters (after fine-tuning they
        differ from the constructed ones); freed layers keep the parameters they started from."""
        conv1 = self.config.conv1
        if isinstance(self.conv1, GaborConv2d):
            conv1 = tuple(self.conv1.specs)
        rules: dict[str, tuple[Rule, ...]] = {
            "conv2": self.config.conv2,
            "conv3": self.config.conv3,
        }
        for name in ("conv2", "conv3")[: len(self.conv_names) - 1]:
            layer, written = getattr(self, name), getattr(self.config, name)
            if isinstance(layer, RuleConv2d):
                terms, bias = layer.terms(), layer.bias.tolist()
                rules[name] = tuple(
                    Rule(r.description, tuple(t for o2, t in terms if o2 == o), bias[o])
                    for o, r in enumerate(written)
                )
        return replace(self.config, conv1=conv1, conv2=rules["conv2"], conv3=rules["conv3"])

    def config_dict(self) -> dict[str, Any]:
        """The current config plus (read-only, ignored when loading) the layer kinds and every
        channel's description."""
        d = self.current_config().to_dict()
        d["layer_kinds"] = self.layer_kinds()
        d["descriptions"] = self.descriptions()
        return d

    @classmethod
    def from_config_dict(cls, d: dict[str, Any]) -> HandNet:
        return cls(HandNetConfig.from_dict(d))
