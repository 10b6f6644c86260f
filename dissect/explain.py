"""Per-class reasoning in words, composed from the exact decompositions and the descriptions,
two levels deep.

Level 1: the class score splits exactly per channel of the last conv layer (see
:mod:`dissect.head`); the channels with the largest mean contribution over the class's images
*carry* the class (their share of the class's positive score mass), the most negative ones
*hold it back*. Level 2: each carrying channel is itself an exact sum over the inner channels it
reads (``y_o = bias + sum_j a_j``); an inner channel whose mean signed share over the class's
images is positive *reinforces* it, a negative one *negates* it. Coverage: the share of the
class's positive score mass carried by channels whose description is confident.

Derive this on training or validation images: checking it on the test split keeps the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from dissect.contributions import dataset_shares, inner_channels
from dissect.head import class_drivers
from dissect.infra.errors import AuditError
from dissect.labels import describe_model
from dissect.specimen import Specimen, specimen_of

__all__ = ["Inner", "Driver", "ClassReasoning", "explain_classes", "reasoning_table", "HELD_BACK"]

HELD_BACK = 0.01  # a channel holds a class back when it takes at least 1 % of its positive score


@dataclass(frozen=True)
class Inner:
    """Inner channel ``channel`` (0-based) of ``layer`` and its mean signed share in a driver."""

    layer: str
    channel: int
    description: str
    share: float


@dataclass(frozen=True)
class Driver:
    """Channel ``channel`` (0-based) of ``layer``: its share of the class's positive score mass
    (negative for a channel that holds the class back) and what builds it."""

    layer: str
    channel: int
    description: str
    confident: bool
    share: float
    reinforced_by: tuple[Inner, ...] = ()
    negated_by: tuple[Inner, ...] = ()


@dataclass(frozen=True)
class ClassReasoning:
    index: int
    name: str
    carried_by: tuple[Driver, ...]
    held_back_by: tuple[Driver, ...]
    coverage: float  # share of positive score mass carried by confidently described channels
    images: int
    shares: tuple[float, ...] = field(default=(), repr=False)  # every channel's share

    def paragraph(self) -> str:
        """The reasoning as one paragraph a person reads."""
        if not self.carried_by:
            return f"Class {self.name}: no channel of the last conv layer adds to its score."
        parts = [_driver_words(d) for d in self.carried_by]
        text = f"A {self.name} is mostly " + "; then ".join(parts) + "."
        if self.held_back_by:
            held = ", ".join(f"{_named(d)} ({100 * d.share:+.0f} %)" for d in self.held_back_by)
            text += f" It is held back by {held}."
        text += (f" Confidently described channels carry {100 * self.coverage:.0f} % of its positive "
                 f"score (over {self.images} images).")  # fmt: skip
        return text


def _named(d: Driver | Inner) -> str:
    return f"'{d.description}' ({d.layer} channel {d.channel + 1})"


def _driver_words(d: Driver) -> str:
    words = f"{_named(d)}, {100 * d.share:.0f} %"
    built = []
    if d.reinforced_by:
        built.append(_inner_words(d.reinforced_by) + " reinforced")
    if d.negated_by:
        built.append(_inner_words(d.negated_by) + " negated")
    if built:
        layer = (d.reinforced_by or d.negated_by)[0].layer
        words += f", built from {layer}'s " + ", ".join(built)
    return words


def _inner_words(inner: tuple[Inner, ...]) -> str:
    """``'a' and 'b'``; channels that share a description are named once, with their numbers."""
    groups: dict[str, list[int]] = {}
    for i in inner:
        groups.setdefault(i.description, []).append(i.channel + 1)
    return " and ".join(
        f"'{text}'" if len(chans) == 1 else f"'{text}' (channels {' and '.join(map(str, chans))})"
        for text, chans in groups.items()
    )


@torch.no_grad()
def explain_classes(
    model: nn.Module | Specimen,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    classes: list[int] | None = None,
    layer: str | None = None,
    descriptions: pd.DataFrame | None = None,
    top: int = 3,
    inner_top: int = 2,
    held_back: int = 2,
) -> list[ClassReasoning]:
    """The reasoning of every class (or ``classes``), derived on ``images``/``labels``, from the
    channels of conv ``layer`` (default: the last conv layer).

    ``descriptions``: :func:`~dissect.labels.describe_model`'s table (computed when absent)."""
    specimen = specimen_of(model)
    if layer is not None:
        specimen.check_layer(layer)
    chosen = list(range(specimen.num_classes)) if classes is None else list(classes)
    bad = [k for k in chosen if not 0 <= k < specimen.num_classes]
    if bad:
        raise AuditError(f"no class {bad[0]}: the model has classes 0..{specimen.num_classes - 1}")
    table = describe_model(specimen) if descriptions is None else descriptions
    words = {(str(r.layer), int(r.channel) - 1): (str(r.description), bool(r.confident))
             for r in table.itertuples()}  # fmt: skip
    last = layer or specimen.conv_names[-1]
    inner_layer = specimen.previous(last)
    drivers = class_drivers(specimen, images, labels, layer=last)
    out = []
    for k in chosen:
        rows = drivers[drivers["class"] == k].sort_values("channel")
        # from the drivers table: CPU bookkeeping, like every tensor it meets here
        mean = torch.tensor(rows["mean_contribution"].to_numpy(), dtype=torch.float64, device="cpu")
        positive = float(mean.clamp(min=0).sum()) or 1.0
        share = mean / positive
        flags = [words.get((last, c), ("", False))[1] for c in range(len(mean))]
        confident = torch.tensor(flags, device=mean.device)
        coverage = float(mean.clamp(min=0)[confident].sum()) / positive
        own = images[labels == k]
        carried = [_driver(specimen, last, int(c), float(share[c]), words, own, inner_layer, inner_top)
                   for c in torch.argsort(mean, descending=True)[:top].tolist() if mean[c] > 0]  # fmt: skip
        held = [_driver(specimen, last, int(c), float(share[c]), words, own, None, 0)
                for c in torch.argsort(mean)[:held_back].tolist() if share[c] <= -HELD_BACK]  # fmt: skip
        out.append(ClassReasoning(k, specimen.class_names[k], tuple(carried), tuple(held), coverage,
                                  len(own), tuple(share.tolist())))  # fmt: skip
    return out


def _driver(
    specimen: Specimen,
    layer: str,
    channel: int,
    share: float,
    words: dict[tuple[str, int], tuple[str, bool]],
    own: torch.Tensor,
    inner_layer: str | None,
    inner_top: int,
) -> Driver:
    description, confident = words.get((layer, channel), (f"channel {channel + 1}", False))
    if inner_layer is None or inner_top == 0 or len(own) == 0:
        return Driver(layer, channel, description, confident, share)
    shares = dataset_shares(specimen, layer, own, channel)
    reads = list(inner_channels(specimen.conv(layer), channel))

    def inner(i: int) -> Inner:
        j = reads[i]
        return Inner(
            inner_layer,
            j,
            words.get((inner_layer, j), (f"channel {j + 1}", False))[0],
            float(shares[i]),
        )

    up = [
        inner(i)
        for i in torch.argsort(shares, descending=True)[:inner_top].tolist()
        if shares[i] > 0
    ]
    down = [inner(i) for i in torch.argsort(shares)[:inner_top].tolist() if shares[i] < 0]
    return Driver(layer, channel, description, confident, share, tuple(up), tuple(down))


def reasoning_table(reasons: list[ClassReasoning]) -> pd.DataFrame:
    """One row per (class, driver): role (carries / holds back), channel (1-based), share,
    description, confidence, and the inner channels that reinforce or negate it."""
    rows = []
    for r in reasons:
        for role, drivers in (("carries", r.carried_by), ("holds back", r.held_back_by)):
            for d in drivers:
                rows.append({"class": r.name, "role": role, "layer": d.layer, "channel": d.channel + 1,
                             "share": round(d.share, 4), "description": d.description,
                             "confident": d.confident, "coverage": round(r.coverage, 4),
                             "reinforced_by": "; ".join(f"{i.description} ({i.share:+.2f})" for i in d.reinforced_by),
                             "negated_by": "; ".join(f"{i.description} ({i.share:+.2f})" for i in d.negated_by)})  # fmt: skip
    return pd.DataFrame(rows)
