"""A network compiled from a dissection: the network its explanation describes.

From a trained two- or three-layer ConvNet of the suite's shape and its dissection (channel
descriptions and contribution tables), build a HandNet where

- each first-layer channel is the canonical filter of its description (the analytic line or
  edge the words name, at the orientation they name, of the fixed widths :data:`LINE_WIDTH`
  and :data:`EDGE_WIDTH` for every channel, with the original filter's norm and bias), or
  silent where the description is not confident or names no line or edge;
- (optionally) each second-layer channel, and then each third-layer one, is a rule built from
  its contribution table and the words of the layer below: one term per row that the table
  does not call weak, over a described inner channel, its profile the fixed oriented Gaussian
  (:data:`TERM_LENGTH`, :data:`TERM_WIDTH`) along the inner channel's orientation (round where
  the words name none); the row's weights summarised as that one profile
  (:func:`dissect.terms.row_term`, shown in the table's ``term`` column):
  its sign (reinforces or negates), its place (to within half a pixel) and its strength are
  those of the profile that fits the row's weights best by least squares. The rule's bias
  makes it as often active on the reference digits as the original channel; undescribed
  channels are silent; the layers not compiled keep their trained weights;
- the head is refitted by the suite's convex fit (:func:`handnet.head.fit_logistic`; no
  gradient touches a conv weight) on the training digits with :data:`HEAD_COPIES` - 1
  augmented copies (the augmentation the original was trained with), its L2 penalty chosen on
  the data set's validation split (:func:`dissect.infra.datasets.split_validation`) when the
  data set is named; or the head is copied.

How far its accuracy falls short of the original's says how much of the network the words
capture.

Why a row's term is fitted to its weights rather than signed by the table's role and scaled by
its share: the role compares a row's contribution with its inner channel at the same place, so
a row whose main lobe sits a pixel off centre (a "vertical line" channel reading the right side
of a 112.5-degree line one pixel to its right) is called "other" and was left out, and a row
with lobes of both signs has a small net share however much it matters where its lobes fall.
On this project's three default pruned nets (mnist-5k) the rules built from roles and shares
reproduced their channels poorly: the compiled channel's pooled output correlated with the
original's at 0.12 on average (training digits 200 to 1,200), against 0.47 with fitted terms;
validation digits classified right by the refitted head, 1,452 of 1,500 against 1,458.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pandas as pd
import torch
from torch import nn

from dissect.contributions import dataset_magnitudes, weak_rows
from dissect.gabor import gabor_fit
from dissect.infra.datasets import split_validation
from dissect.infra.errors import AuditError
from dissect.labels import describe_model
from dissect.probes import INTERIOR_OF, LINE_NAMES
from dissect.specimen import specimen_of
from dissect.terms import TERM_LENGTH, TERM_ROUND, TERM_WIDTH, row_term
from handnet.filters import GaborSpec, edge_detector_spec, line_detector_spec, spec_kernel
from handnet.head import HEAD_COPIES, HEAD_L2, choose_l2, fit_head, head_copies
from handnet.layers import Rule, RuleConv2d, Term
from handnet.model import HandNet, HandNetConfig
from simpleconvnet.model import SimpleConvNet

__all__ = [
    "canonical_spec",
    "gabor_fit_specs",
    "compile_explanation",
    "refit_readout",
    "SILENT",
    "LINE_WIDTH",
    "EDGE_WIDTH",
    "TERM_LENGTH",
    "TERM_WIDTH",
    "TERM_ROUND",
    "HEAD_L2",
    "HEAD_COPIES",
]

SILENT = GaborSpec(gain=0.0)  # a channel the words do not describe: no output at all

# The canonical filters' widths (pixels), the same for every channel: a line description names
# a bright line 2 px wide (wavelength 4); a side description names a step from dark to bright
# whose two lobes span the 5x5 kernel (wavelength 6), as first layers learn them (at width 2
# its lobes are single columns 2 px apart). Chosen on the validation digits of the default run.
LINE_WIDTH, EDGE_WIDTH = 2.0, 3.0
_LINES = {name: float(angle) for angle, name in LINE_NAMES.items()}
# "left side of a vertical line": the bright interior lies towards 0 degrees, the side at 180
_SIDES = {name: (towards + 180) % 360 for name, towards in INTERIOR_OF.items()}


def _conv(model: SimpleConvNet, name: str) -> nn.Conv2d:
    return cast(nn.Conv2d, model.get_submodule(name))


def _bias(model: SimpleConvNet, name: str) -> torch.Tensor:
    bias = _conv(model, name).bias
    assert bias is not None  # the suite's conv layers all have one
    return bias


def canonical_spec(description: str) -> GaborSpec | None:
    """The analytic filter a first-layer description names (unit gain), or None."""
    if description in _LINES:
        return line_detector_spec(_LINES[description], width=LINE_WIDTH, gain=1.0)
    if description in _SIDES:
        return edge_detector_spec(_SIDES[description], width=EDGE_WIDTH, gain=1.0)
    return None


def gabor_fit_specs(model: SimpleConvNet) -> tuple[GaborSpec, ...]:
    """Each first-layer channel as the Gabor that fits its own weights best (HandNet's family:
    zero-mean, centred on the kernel; :func:`dissect.gabor.gabor_fit`), with its bias: what the
    filters are, not what the words say."""
    weight = _conv(model, "conv1").weight.detach().cpu().sum(1)
    bias = _bias(model, "conv1").detach().cpu()
    specs = []
    for c in range(weight.shape[0]):
        fit = gabor_fit(weight[c].numpy(), zero_mean=True, centred=True)
        specs.append(GaborSpec(fit.orientation, fit.wavelength, fit.phase, fit.sigma, fit.aspect,
                               fit.amplitude, float(bias[c])))  # fmt: skip
    return tuple(specs)


def _conv1(model: SimpleConvNet, table: pd.DataFrame) -> tuple[GaborSpec, ...]:
    weight, bias = (
        _conv(model, "conv1").weight.detach().cpu(),
        _bias(model, "conv1").detach().cpu(),
    )
    k = weight.shape[-1]
    specs = []
    for c, row in enumerate(table.itertuples()):
        spec = canonical_spec(str(row.description)) if row.confident else None
        if spec is None:
            specs.append(SILENT)
            continue
        norm = float(spec_kernel(spec, k).norm())
        specs.append(
            replace(spec, gain=float(weight[c].norm()) / max(norm, 1e-12), bias=float(bias[c]))
        )
    return tuple(specs)


@torch.no_grad()
def _rules(
    model: SimpleConvNet,
    compiled: HandNet,
    layer: str,
    inner: pd.DataFrame,
    outer: pd.DataFrame,
    data: torch.Tensor,
) -> tuple[Rule, ...]:
    """The rules of conv ``layer`` (conv2 or conv3). ``compiled``: the network with the layers
    below compiled (its ``layer`` is not read), whose outputs the rules read; ``inner`` and
    ``outer``: the descriptions of the layer below and of ``layer``; ``data``: the reference
    digits, on which the tables call rows weak and the rules' biases are set.

    Each row the table does not call weak, over a described inner channel, becomes its term
    (:func:`dissect.terms.row_term`, the table's ``term`` column): the profile the inner
    channel's words give, along the orientation they name or round where they name none (a
    corner, a curve), at the sign, place and strength that fit the row's weights best."""
    words = {int(r.channel) - 1: str(r.description) for r in inner.itertuples() if r.confident}
    weight = _conv(model, layer).weight.detach()
    original = specimen_of(model)
    y_original = original.run(data, {layer})[layer]
    x_hand = specimen_of(compiled).run(data, {f"{layer}:in"})[f"{layer}:in"]
    rules = []
    for o, row in enumerate(outer.itertuples()):
        if not row.confident:
            rules.append(Rule(f"{row.description} (not confident: silent)", (), 0.0))
            continue
        # the rows the table calls weak over these digits (a full conv: row j reads channel j)
        weak = weak_rows(original, layer, o, dataset_magnitudes(original, layer, data, o), data)
        terms = []
        for j in range(weight.shape[1]):
            if j in weak or j not in words:
                continue
            t = row_term(weight[o, j], words[j])
            if t is not None:
                terms.append(Term(j, t.sign, abs(t.strength), t.orientation, t.length, t.width, t.dx, t.dy))  # fmt: skip
        rules.append(Rule(str(row.description), tuple(terms), 0.0))
    return _as_often_active(rules, compiled, y_original, x_hand)


def _as_often_active(
    rules: list[Rule], compiled: HandNet, y_original: torch.Tensor, x_hand: torch.Tensor
) -> tuple[Rule, ...]:
    """``rules`` with each bias set so that the rule is positive (active) at the same share of
    the reference digits' positions as the original channel (``y_original [N, O, H, W]``, its
    output before the non-linearity); ``x_hand``: what the rules read on those digits. A rule
    without terms stays silent (bias 0)."""
    layer = RuleConv2d(x_hand.shape[1], rules, compiled.config.kernel_size).to(x_hand.device)
    z = layer(x_hand)  # every bias is still 0
    out = []
    for o, rule in enumerate(rules):
        if not rule.terms:
            out.append(rule)
            continue
        active = float((y_original[:, o] > 0).double().mean())
        values = z[:, o].flatten().double()
        values = values[:: max(1, len(values) // 100_000)]  # torch.quantile's size limit
        out.append(replace(rule, bias=-float(torch.quantile(values, 1.0 - active))))
    return tuple(out)


def refit_readout(
    net: SimpleConvNet, images: torch.Tensor, labels: torch.Tensor, dataset: str | None = None
) -> float:
    """Refit ``net``'s head (fc4/fc5) by the suite's convex fit on its frozen conv features of
    the training ``images``/``labels`` and their augmented copies (:data:`HEAD_COPIES`). With
    ``dataset`` named, the L2 penalty of :data:`HEAD_L2` that does best on its validation split
    (fitted on the rest; :func:`handnet.head.choose_l2`) is taken, then the head fitted on all
    the digits; else (or with no validation digits) the first. Returns the penalty used."""
    (xf, yf), (xv, yv) = (
        split_validation(images, labels, dataset)
        if dataset is not None
        else ((images, labels), (images[:0], labels[:0]))
    )
    choice = choose_l2(net, (xf, yf), (xv, yv), dataset)
    fit_head(net, images, labels, choice.l2, head_copies(len(images)), dataset, warm=choice.fit)
    return choice.l2


def compile_explanation(
    model: SimpleConvNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    layers: tuple[str, ...] = ("conv1", "conv2"),
    descriptions: pd.DataFrame | None = None,
    refit_head: bool = True,
    reference: int = 200,
    dataset: str | None = None,
    first: str = "words",
) -> HandNet:
    """The HandNet that ``model``'s explanation describes, with ``layers`` compiled (the first
    one, two or three conv layers: "conv1"; "conv1", "conv2"; or, in a three-layer net, all
    three) and the others kept as they are; the head refitted on ``images``/``labels``
    (training digits; :func:`refit_readout`, whose L2 penalty the validation split of
    ``dataset`` chooses when it is named) or copied. ``reference``: digits on which the contribution
    tables call rows weak and the rules' biases are set (the first of ``images``, seeded order
    left to the caller). ``first="gabor"``: conv1 from the Gabor fits of its own weights
    (:func:`gabor_fit_specs`) instead of its words, reported separately."""
    names = list(model.conv_names)
    if first not in ("words", "gabor"):
        raise AuditError(f"conv1 is compiled from 'words' or 'gabor' fits (asked: {first!r})")
    if names not in (["conv1", "conv2"], ["conv1", "conv2", "conv3"]):
        raise AuditError(
            f"only two- or three-conv-layer networks of the suite's shape compile (this one has {', '.join(names)})"
        )
    if tuple(layers) not in [tuple(names[:n]) for n in range(1, len(names) + 1)]:
        raise AuditError(
            f"compile the first conv layers in order, {' or '.join(', '.join(names[:n]) for n in range(1, len(names) + 1))} (asked: {', '.join(layers)})"
        )
    table = describe_model(model) if descriptions is None else descriptions
    tables = {n: table[table["layer"] == n] for n in names}
    c = model.config
    device = next(model.parameters()).device
    conv1 = _conv1(model, tables["conv1"]) if first == "words" else gabor_fit_specs(model)
    rules = {n: tuple(Rule(str(d), (), 0.0) for d in tables[n]["description"]) for n in names[1:]}

    def build(compiled: tuple[str, ...]) -> HandNet:
        """The net with conv1 and ``compiled`` from words, every other layer as trained."""
        config = HandNetConfig(conv1, rules["conv2"], rules.get("conv3", ()),
                               fc4=c.fc4, classes=c.classes, kernel_size=c.kernel_size, mean=c.mean,
                               std=c.std, free=tuple(n for n in names[1:] if n not in compiled))  # fmt: skip
        net = HandNet(config).to(device).eval()
        with torch.no_grad():
            for n in config.free:
                _conv(net, n).weight.copy_(_conv(model, n).weight)
                _bias(net, n).copy_(_bias(model, n))
        return net

    net = build(())
    reference_digits = images[:reference].to(device)
    for n in range(1, len(layers)):  # each layer's rules read the layers below as compiled
        below, layer = names[n - 1], names[n]
        rules[layer] = _rules(model, net, layer, tables[below], tables[layer], reference_digits)
        net = build(tuple(names[1 : n + 1]))
    if refit_head:
        refit_readout(net, images, labels, dataset)
    else:
        with torch.no_grad():
            net.fc4.load_state_dict(model.fc4.state_dict())
            net.fc5.load_state_dict(model.fc5.state_dict())
    return net.eval()
