"""HandNet: SimpleConvNet's shape built from readable parts.

conv1 is a :class:`~handnet.layers.GaborConv2d` (line and edge detectors), conv2 a
:class:`~handnet.layers.RuleConv2d` (each channel a written rule over conv1's channels), then
ReLU + 2x2 max-pooling after each and the linear head fc4 -> fc5 of SimpleConvNet. Layers named
in ``config.free`` are plain ``nn.Conv2d`` (after free fine-tuning); they keep the constructed
descriptions they started from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from handnet.bank import carry_rules, wide_conv1, wide_rules, with_context
from handnet.filters import GaborSpec
from handnet.layers import GaborConv2d, Rule, RuleConv2d, Term
from simpleconvnet.model import MNIST_MEAN, MNIST_STD, SimpleConvNet, SimpleConvNetConfig

__all__ = ["HandNet", "HandNetConfig", "default_config", "MAX_WIDTHS"]

#: The widest cut of the bank: wide_conv1's 16 filters and wide_rules' 48 rules.
MAX_WIDTHS = (16, 48)
# Rules past default_rules' sixteen read the filters past default_conv1's eight.
_DEFAULT_RULES = 16

HAND_BUILT_KINDS = ("gabor", "rule")


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


def default_config(
    widths: tuple[int, ...] = (8, 16), fc4: int = 128, context: bool = True
) -> HandNetConfig:
    """The bank (:mod:`handnet.bank`: its first 8 filters and 16 rules are the default ones,
    then the wide ones) cut to ``widths`` (at most 16 first-layer filters and 48 rules, more
    than 16 rules only over all 16 filters; a third width adds a conv3 of
    :func:`carry_rules`), with cancelling context terms (:func:`with_context`) unless
    ``context`` is False."""
    conv1, rules = wide_conv1(), wide_rules()
    ok = len(widths) in (2, 3) and 1 <= widths[0] <= len(conv1) and 1 <= widths[1] <= len(rules)
    if not ok or (len(widths) == 3 and not 1 <= widths[2] <= widths[1]):
        raise ValueError(
            f"HandNet widths {widths}: two or three widths, at most {len(conv1)}, {len(rules)} "
            f"and the second"
        )
    if widths[1] > _DEFAULT_RULES and widths[0] < len(conv1):
        raise ValueError(
            f"HandNet widths {widths}: more than {_DEFAULT_RULES} rules read all "
            f"{len(conv1)} first-layer filters (for example {len(conv1)},{widths[1]})"
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
