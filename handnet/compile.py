"""A network compiled from a dissection: the network its explanation describes.

From a trained two-layer ConvNet of the suite's shape and its dissection (channel descriptions
and contribution tables), build a HandNet where

- each first-layer channel is the canonical filter of its description (the analytic line or
  edge the words name, at the orientation they name, with the original filter's norm and bias),
  or silent where the description is not confident or names no line or edge;
- (optionally) each second-layer channel is a rule built from its contribution table: one
  oriented term per reinforcing or negating row over a described inner channel, signed by the
  role, its strength the row's share of the channel's weight mass; undescribed channels are
  silent;
- the head is refitted in closed form (no gradient touches a conv weight), or copied.

How far its accuracy falls short of the original's says how much of the network the words
capture.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pandas as pd
import torch
from torch import nn

from dissect.contributions import contribution_table
from dissect.infra.errors import AuditError
from dissect.labels import describe_model
from dissect.probes import EDGE_SIDES, LINE_NAMES
from handnet.filters import GaborSpec, edge_detector_spec, line_detector_spec, spec_kernel
from handnet.head import fit_head
from handnet.layers import Rule, Term
from handnet.model import HandNet, HandNetConfig
from simpleconvnet.model import SimpleConvNet

__all__ = ["canonical_spec", "compile_explanation", "SILENT"]

SILENT = GaborSpec(gain=0.0)  # a channel the words do not describe: no output at all

_LINES = {name: float(angle) for angle, name in LINE_NAMES.items()}
# "left side of a vertical line": the bright interior lies towards 0 degrees, the side at 180
_SIDES = {
    name: float(towards + 180) % 360 for sides in EDGE_SIDES.values() for name, towards in sides
}
_ORIENTATION = {
    name: float(angle) for angle, sides in EDGE_SIDES.items() for name, _ in sides
} | _LINES


def _conv(model: SimpleConvNet, name: str) -> nn.Conv2d:
    return cast(nn.Conv2d, model.get_submodule(name))


def _bias(model: SimpleConvNet, name: str) -> torch.Tensor:
    bias = _conv(model, name).bias
    assert bias is not None  # the suite's conv layers all have one
    return bias


def canonical_spec(description: str) -> GaborSpec | None:
    """The analytic filter a first-layer description names (unit gain), or None."""
    if description in _LINES:
        return line_detector_spec(_LINES[description], gain=1.0)
    if description in _SIDES:
        return edge_detector_spec(_SIDES[description], gain=1.0)
    return None


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


def _conv2(
    model: SimpleConvNet, conv1: pd.DataFrame, conv2: pd.DataFrame, data: torch.Tensor
) -> tuple[Rule, ...]:
    words = {int(r.channel) - 1: str(r.description) for r in conv1.itertuples() if r.confident}
    weight, bias = (
        _conv(model, "conv2").weight.detach().cpu(),
        _bias(model, "conv2").detach().cpu(),
    )
    rules = []
    for o, row in enumerate(conv2.itertuples()):
        if not row.confident:
            rules.append(Rule(f"{row.description} (not confident: silent)", (), 0.0))
            continue
        table = contribution_table(model, "conv2", o, data[:1], data=data)[:-1]
        mass = float(weight[o].sum((1, 2)).abs().sum())
        terms = []
        for r in table.itertuples():
            j = int(r.j) - 1
            if r.role not in ("reinforces", "negates") or j not in words:
                continue
            orientation = _ORIENTATION.get(words[j], 0.0)
            sign = 1 if r.role == "reinforces" else -1
            terms.append(Term(j, sign, abs(float(r.share_data)) * mass, orientation))
        rules.append(Rule(str(row.description), tuple(terms), float(bias[o])))
    return tuple(rules)


def compile_explanation(
    model: SimpleConvNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    layers: tuple[str, ...] = ("conv1", "conv2"),
    descriptions: pd.DataFrame | None = None,
    refit_head: bool = True,
    reference: int = 200,
) -> HandNet:
    """The HandNet that ``model``'s explanation describes, with ``layers`` compiled ("conv1", or
    "conv1" and "conv2") and the others kept as they are; the head refitted on ``images``/
    ``labels`` (training digits) or copied. ``reference``: digits whose contribution tables
    give the roles and shares (the first of ``images``, seeded order left to the caller)."""
    if list(model.conv_names) != ["conv1", "conv2"]:
        raise AuditError(
            f"only two-conv-layer networks of the suite's shape compile (this one has {', '.join(model.conv_names)})"
        )
    if "conv1" not in layers or not set(layers) <= {"conv1", "conv2"}:
        raise AuditError(f"compile conv1, or conv1 and conv2 (asked: {', '.join(layers)})")
    table = describe_model(model) if descriptions is None else descriptions
    conv1, conv2 = table[table["layer"] == "conv1"], table[table["layer"] == "conv2"]
    c = model.config
    free = () if "conv2" in layers else ("conv2",)
    rules = (
        _conv2(model, conv1, conv2, images[:reference])
        if "conv2" in layers
        else tuple(Rule(str(d), (), 0.0) for d in conv2["description"])
    )
    config = HandNetConfig(_conv1(model, conv1), rules, fc4=c.fc4, classes=c.classes, kernel_size=c.kernel_size,
                           mean=c.mean, std=c.std, free=free)  # fmt: skip
    net = HandNet(config).to(next(model.parameters()).device)
    with torch.no_grad():
        if free:
            _conv(net, "conv2").weight.copy_(_conv(model, "conv2").weight)
            _bias(net, "conv2").copy_(_bias(model, "conv2"))
        if not refit_head:
            net.fc4.load_state_dict(model.fc4.state_dict())
            net.fc5.load_state_dict(model.fc5.state_dict())
    if refit_head:
        fit_head(net, images, labels)
    return net.eval()
