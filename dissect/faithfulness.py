"""Faithfulness that tests what each claim says, on images the claim was not derived from.

- "Class k is carried by channels A, B, C" (of a conv layer): zeroing them after their
  non-linearity must lower class k's recall and its per-image margin (score of k minus the best
  other score) on held-out images more than zeroing as many channels drawn at random from the
  others. The p-value is the share of random draws that hurt at least as much (with the usual
  +1 correction), so the claim holds at p < 0.05 with 200 draws or more.
- "Channel A is built from inner channels j, l": removing a_j and a_l from A's sum (before the
  non-linearity and pooling that follow) must lower the margin more than removing as many random
  inner channels of A.
- "Rows called weak in A's table are weak": removing all of them changes A's post-activation
  output by at most 10 % of its mean magnitude.
- "Row j reinforces A": removing a_j lowers A's post-activation output at the positions where
  inner channel j is active (x_j > 0 at the centre of the unit's window), on average, and by more
  than at the positions where it is not (the chance level).

Each check reports its statistic, its p-value and its chance level; nothing is pooled into one
number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dissect.contributions import (
    ROLE_WEAK_CHANGE,
    inner_channels,
    removal_change,
    removal_hook,
    set_removal_hook,
)
from dissect.explain import ClassReasoning
from dissect.head import score_contributions
from dissect.infra import distributed as dist
from dissect.layout import centre_map
from dissect.specimen import Specimen, specimen_of

__all__ = [
    "Check",
    "margins",
    "driver_check",
    "zeroing",
    "inner_check",
    "weak_rows_check",
    "reinforcing_row_check",
    "checks_table",
    "scorecard",
    "check_reasoning",
    "ALPHA",
    "WEAK_CHANGE",
]

ALPHA = 0.05
#: removing the weak rows may change the channel by 10 % of its mean magnitude (the same bound
#: the tables call rows weak by, on the digits they are derived from)
WEAK_CHANGE = ROLE_WEAK_CHANGE


@dataclass(frozen=True)
class Check:
    """One claim checked: ``statistic`` is the named removal's effect, ``chance`` the mean effect
    of random removals of the same size, ``p`` the share of random removals at least as strong."""

    kind: str
    claim: str
    statistic: float
    chance: float
    p: float
    holds: bool
    images: int


@torch.no_grad()
def margins(
    specimen: Specimen, images: torch.Tensor, labels: torch.Tensor, **run: object
) -> torch.Tensor:
    """Per image: the true class's score minus the best other score ``[N]`` (positive: right)."""
    scores = specimen.run(images, {"logits"}, **run)["logits"].double()  # type: ignore[arg-type]
    own = scores.gather(1, labels.to(scores.device)[:, None])[:, 0]
    others = scores.scatter(1, labels.to(scores.device)[:, None], float("-inf")).amax(1)
    return (own - others).cpu()


#: images in one batched pass of removal sets (each set gets its own copy of the images), by
#: device: on a GPU a pass costs mostly its start, on a CPU the activations should stay in cache
#: (the pruned net's checks on this project's 2-core CPU: 8.4 s one set a pass, 8.1 s with 256
#: images a pass, 14.7 s with 4,096)
SET_PASS_IMAGES = {"cpu": 256, "cuda": 4096}
#: the effects of removal sets: ``effects(sets) -> [(effect, effect), ...]``, one per set
Effects = Callable[[list[list[int]]], list[tuple[float, float]]]
#: a removal: ``removal(chunk, n)`` -> :meth:`Specimen.run`'s arguments for ``len(chunk)``
#: copies of ``n`` images, copy ``s`` without the set ``chunk[s]``
Removal = Callable[[list[list[int]], int], dict[str, object]]


def _set_margin_sums(
    specimen: Specimen,
    images: torch.Tensor,
    labels: torch.Tensor,
    base: torch.Tensor,
    sets: list[list[int]],
    removal: Removal,
) -> torch.Tensor:
    """Over the data set, for each removal set: ``[S, 3]``, images right before (margin ``base
    [N] > 0``), images still right, sum of the margin's drop (float64). ``removal(chunk, n)``
    gives :meth:`Specimen.run`'s arguments for a batch of ``len(chunk)`` copies of ``n`` images
    (copy ``s`` of image ``i`` at ``s * n + i``), copy ``s`` without ``chunk[s]``: many sets
    go through one pass (one pass per set spends its time starting passes, on a GPU most)."""
    limit = SET_PASS_IMAGES.get(specimen.device.type, SET_PASS_IMAGES["cpu"])
    per_pass = max(1, limit // max(1, len(images)))
    parts = [torch.zeros(0, 3, dtype=torch.float64, device="cpu")]
    for start in range(0, len(sets), per_pass):
        chunk = sets[start : start + per_pass]
        sums = partial(_chunk_sums, specimen, chunk, removal)
        batch = max(1, limit // len(chunk))
        parts.append(dist.sharded_sum(sums, images, labels, base, batch_size=batch))
    return torch.cat(parts)


def zeroing(layer: str, width: int) -> Removal:
    """The removal of :func:`_set_margin_sums` that zeroes each set's channels of ``layer``
    (``width`` channels) after its non-linearity, copy by copy."""

    def zero(chunk: list[list[int]], n: int) -> dict[str, object]:
        mask = torch.zeros(len(chunk), width, dtype=torch.bool, device="cpu")
        for s, chosen in enumerate(chunk):
            mask[s, chosen] = True
        return {"zero": {layer: mask.repeat_interleave(n, 0)}}

    return zero


def _chunk_sums(
    specimen: Specimen,
    chunk: list[list[int]],
    removal: Removal,
    x: torch.Tensor,
    y: torch.Tensor,
    before: torch.Tensor,
) -> torch.Tensor:
    """:func:`_set_margin_sums` on one batch of images ``x`` for the sets of ``chunk``."""
    n, s = len(x), len(chunk)
    copies = x.repeat(s, *(1,) * (x.dim() - 1))
    m = margins(specimen, copies, y.repeat(s), **removal(chunk, n)).reshape(s, n)
    right = (before > 0).sum().double().expand(s)
    return torch.stack([right, (m > 0).sum(1).double(), (before[None] - m).sum(1)], 1)


def _p_value(named: float, random: torch.Tensor) -> float:
    return float((1 + (random >= named).sum()) / (1 + len(random)))


def _permutation(
    effects: Effects,
    named: list[int],
    pool: list[int],
    draws: int,
    seed: int,
) -> tuple[tuple[float, float], torch.Tensor]:
    """The named removal's effects and ``[draws, 2]`` effects of random removals from ``pool``.
    A set drawn twice is measured once (few inner channels leave few distinct sets), and the
    distinct sets are measured together."""
    g = torch.Generator().manual_seed(seed)
    drawn = [
        tuple(sorted(pool[i] for i in torch.randperm(len(pool), generator=g, device=g.device)[: len(named)].tolist()))
        for _ in range(draws)
    ]  # fmt: skip
    key = tuple(sorted(named))
    distinct = list(dict.fromkeys([*drawn, key]))
    measured = dict(zip(distinct, effects([list(d) for d in distinct]), strict=True))
    random = torch.tensor([measured[d] for d in drawn], dtype=torch.float64, device="cpu")
    return measured[key], random.reshape(draws, 2)


def _margins_of(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    own = scores.gather(1, y[:, None])[:, 0]
    return own - scores.scatter(1, y[:, None], float("-inf")).amax(1)


def _split_effect(
    specimen: Specimen, layer: str, own: torch.Tensor, y: torch.Tensor
) -> Callable[[list[int]], tuple[float, float]]:
    """The effects of zeroing channels of ``layer`` read off the exact split of the class
    scores (:func:`~dissect.head.score_contributions`): right where each channel reaches the
    scores on a path of its own into an affine head (zeroing it after its non-linearity then
    takes away exactly its contribution). Only used once checked against real passes."""
    split = score_contributions(specimen, own, layer)
    scores, parts = split.scores.cpu(), split.contributions.cpu()
    y = y.cpu()
    base = _margins_of(scores, y)

    def effect(chosen: list[int]) -> tuple[float, float]:
        m = _margins_of(scores - parts[:, :, chosen].sum(2), y)
        n = len(y)
        return float(((base > 0).sum() - (m > 0).sum()) / n), float((base - m).sum() / n)

    return effect


def _agree(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-5 * (1 + abs(b[1]))


def driver_check(
    model: nn.Module | Specimen,
    layer: str,
    k: int,
    channels: Sequence[int],
    images: torch.Tensor,
    labels: torch.Tensor,
    draws: int = 200,
    seed: int = 0,
) -> list[Check]:
    """Check "class ``k`` is carried by ``channels`` (0-based) of ``layer``" on held-out
    ``images``: two checks, recall and margin, each against random channel sets. Where the
    scores split exactly per channel of ``layer`` and that split gives the same effects as real
    passes (the named set and three random sets), the random sets are measured on the split."""
    specimen = specimen_of(model)
    own = images[labels == k]
    y = torch.full((len(own),), k, dtype=torch.long, device=labels.device)
    base = margins(specimen, own, y)
    width = int(specimen.conv(layer).weight.shape[0])
    zero = zeroing(layer, width)

    def passes(sets: list[list[int]]) -> list[tuple[float, float]]:
        sums = _set_margin_sums(specimen, own, y, base, sets, zero)
        n = len(own)
        return [(float(r / n - still / n), float(drop / n)) for r, still, drop in sums]

    pool = [c for c in range(width) if c not in channels]
    effects: Effects = passes
    if len(own):
        fast = _split_effect(specimen, layer, own, y)
        g = torch.Generator().manual_seed(seed + 1)
        probes = [list(channels)] + [
            [pool[i] for i in torch.randperm(len(pool), generator=g, device=g.device)[: len(channels)].tolist()]
            for _ in range(3)
        ]  # fmt: skip
        if all(_agree(fast(c), real) for c, real in zip(probes, passes(probes), strict=True)):

            def effects(sets: list[list[int]]) -> list[tuple[float, float]]:
                return [fast(c) for c in sets]

    named, random = _permutation(effects, list(channels), pool, draws, seed)
    what = f"class {specimen.class_names[k]} is carried by {layer} channels {', '.join(str(c + 1) for c in channels)}"
    return [
        _check("driver: recall", what, named[0], random[:, 0], len(own)),
        _check("driver: margin", what, named[1], random[:, 1], len(own)),
    ]


def _check(kind: str, claim: str, named: float, random: torch.Tensor, n: int) -> Check:
    p = _p_value(named, random)
    return Check(kind, claim, named, float(random.mean()), p, p < ALPHA and named > 0, n)


def inner_check(
    model: nn.Module | Specimen,
    layer: str,
    channel: int,
    inner: Sequence[int],
    k: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    draws: int = 200,
    seed: int = 0,
) -> Check:
    """Check "``channel`` of ``layer`` is built (for class ``k``) from ``inner`` channels": removing
    their contributions from its sum lowers class ``k``'s margin more than removing as many
    random inner channels it reads."""
    specimen = specimen_of(model)
    own = images[labels == k]
    y = torch.full((len(own),), k, dtype=torch.long, device=labels.device)
    base = margins(specimen, own, y)

    def removal(chunk: list[list[int]], n: int) -> dict[str, object]:
        return {"hooks": {layer: set_removal_hook(specimen, layer, channel, chunk, n)}}

    def effects(sets: list[list[int]]) -> list[tuple[float, float]]:
        drops = _set_margin_sums(specimen, own, y, base, sets, removal)[:, 2]
        return [(float(d / len(own)), 0.0) for d in drops]

    pool = [j for j in inner_channels(specimen.conv(layer), channel) if j not in inner]
    named, random = _permutation(effects, list(inner), pool, draws, seed)
    what = (f"{layer} channel {channel + 1} is built (for class {specimen.class_names[k]}) from "
            f"inner channels {', '.join(str(j + 1) for j in inner)}")  # fmt: skip
    return _check("inner: margin", what, named[0], random[:, 0], len(own))


@torch.no_grad()
def weak_rows_check(
    model: nn.Module | Specimen, layer: str, channel: int, weak: Sequence[int], images: torch.Tensor
) -> Check:
    """Check "the rows ``weak`` of ``channel``'s table are weak": removing them all changes its
    post-activation output by at most :data:`WEAK_CHANGE` of its mean magnitude."""
    change = removal_change(specimen_of(model), layer, channel, list(weak), images)
    what = f"{layer} channel {channel + 1}: rows {', '.join(str(j + 1) for j in weak) or 'none'} are weak"
    return Check(
        "role: weak", what, change, WEAK_CHANGE, float("nan"), change <= WEAK_CHANGE, len(images)
    )


@torch.no_grad()
def reinforcing_row_check(
    model: nn.Module | Specimen, layer: str, channel: int, row: int, images: torch.Tensor
) -> Check | None:
    """Check "inner channel ``row`` reinforces ``channel`` of ``layer``": removing its
    contribution lowers the channel's post-activation output where ``x_row > 0`` (at the
    centre of each output unit's window) more than where it is not. ``None`` where the
    non-linearity changes the map's size (nothing to line up)."""
    specimen = specimen_of(model)
    conv = specimen.conv(layer)
    (sr, sc), (orow, ocol) = centre_map(conv)
    post, reads = f"{layer}:post", f"{layer}:in"
    hooks = {layer: removal_hook(specimen, layer, channel, [row])}

    def sums(x: torch.Tensor) -> torch.Tensor:
        acts = specimen.run(x, {post, reads})
        before = acts[post][:, channel].double()
        after = specimen.run(x, {post}, hooks=hooks)[post][:, channel].double()
        h, w = before.shape[1:]
        inner = F.pad(acts[reads][:, row], (max(0, -ocol),) * 2 + (max(0, -orow),) * 2)
        r0, c0 = max(0, orow), max(0, ocol)
        centres = inner[:, r0 : r0 + sr * h : sr, c0 : c0 + sc * w : sc]
        if centres.shape[1:] != before.shape[1:]:
            return torch.full((4,), float("nan"), dtype=torch.float64, device=before.device)
        active, drop = centres > 0, before - after
        return torch.stack([drop[active].sum(), active.sum().double(),
                            drop[~active].sum(), (~active).sum().double()])  # fmt: skip

    at, n_at, away, n_away = dist.sharded_sum(sums, images).tolist()
    if math.isnan(at):
        return None
    named, chance = at / max(n_at, 1.0), away / max(n_away, 1.0)
    what = f"{layer} channel {channel + 1}: inner channel {row + 1} reinforces it"
    return Check("role: reinforces", what, named, chance, float("nan"),
                 named > 0 and named > chance, len(images))  # fmt: skip


def checks_table(checks: Sequence[Check]) -> pd.DataFrame:
    return pd.DataFrame([asdict(c) for c in checks])


def scorecard(checks: Sequence[Check]) -> pd.DataFrame:
    """Per kind of check: how many claims were checked and how many hold (never one pooled
    number across kinds)."""
    table = checks_table(checks)
    if table.empty:
        return pd.DataFrame(columns=["kind", "claims", "hold", "share"])
    card = table.groupby("kind", sort=False)["holds"].agg(claims="count", hold="sum").reset_index()
    card["share"] = card["hold"] / card["claims"]
    return card


def check_reasoning(
    model: nn.Module | Specimen,
    reasons: Sequence[ClassReasoning],
    images: torch.Tensor,
    labels: torch.Tensor,
    draws: int = 200,
    seed: int = 0,
) -> list[Check]:
    """Every claim of :func:`~dissect.explain.explain_classes`' reasoning (derived elsewhere)
    checked on ``images``/``labels``: each class's carrying channels, and for each carrying
    channel the inner channels said to reinforce it."""
    specimen = specimen_of(model)
    checks: list[Check] = []
    for r in reasons:
        if not r.carried_by or not (labels == r.index).any():
            continue
        layer = r.carried_by[0].layer
        checks += driver_check(specimen, layer, r.index, [d.channel for d in r.carried_by], images, labels, draws, seed)  # fmt: skip
        for d in r.carried_by:
            if d.reinforced_by:
                inner = [i.channel for i in d.reinforced_by]
                checks.append(inner_check(specimen, layer, d.channel, inner, r.index, images, labels, draws, seed))  # fmt: skip
    return checks
