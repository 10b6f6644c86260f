"""Channel descriptions from probe responses, with a confidence and a secondary function.

A channel's response to a probe is its largest post-ReLU activation in the central half of the
map (away from the zero-padded border); its
response to a probe class is its best response over that class's variants (widths, positions). The description is the class
it responds to most (in the first layer, see below); the confidence ``(best - mean of the other classes) / (best - weakest)``
says how far the best class stands out of the channel's own range of responses (1: only the
best class excites it; 0: it responds to every class alike), so an untuned baseline response
to any bright stroke does not count as selectivity.

A first-layer description names an orientation, a claim that holds to within one probe step
(22.5 degrees; :mod:`dissect.strokes` checks it on real strokes with that tolerance). Of a
channel tuned broadly and lopsidedly (answering 135 degrees best, 157.5 at 90 % and 180 at
77 %, say), the class it answers best sits at one flank of what it detects; so the first layer
is described by the line or edge class whose claim covers most of the channel's tuning: the
largest sum of its responses to that class and to the classes of the same kind one step to
either side (:func:`claimed_class`; the best class where it ties). Symmetrically tuned channels
keep their best class. The confidence stays that of the best class.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from dissect.activations import layer_activation
from dissect.probes import FINE, INTERIOR_OF, ORIENTATION_OF, ProbeSet, make_probes
from dissect.specimen import Specimen, specimen_of

__all__ = [
    "probe_responses",
    "probes_for",
    "describe_layer",
    "describe_model",
    "claimed_class",
    "CONFIDENT",
    "SECONDARY_RATIO",
]

CONFIDENT = 0.5  # confidence from which a description counts as confident
SECONDARY_RATIO = 0.85  # a second class this close to the best is named as secondary function


@torch.no_grad()
def probe_responses(
    model: nn.Module | Specimen, layer: str, probes: ProbeSet | None = None
) -> tuple[torch.Tensor, list[str]]:
    """``([C, K] best peak activation over each class's variants, K class names)``."""
    specimen = specimen_of(model)
    specimen.check_layer(layer)
    probes = probes or make_probes(specimen.spec.shape)
    maps = layer_activation(specimen, layer, probes.images)
    h, w = maps.shape[2:]
    # the central half only: probes run to the image border, where zero padding adds edges
    peak = maps[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4].amax((2, 3)).cpu()  # [P, C]
    names = probes.class_names
    per_class = [peak[[c == n for c in probes.classes]].amax(0) for n in names]  # K x [C]
    return torch.stack(per_class, 1).contiguous(), names


def probes_for(model: nn.Module | Specimen, layer: str, probes: ProbeSet | None = None) -> ProbeSet:
    """The probes that fit a layer's receptive field: the first layer sees small patches, so it
    is described by lines and edges only, at eight orientations; deeper layers by every probe
    class at the four main orientations (not the :data:`~dissect.probes.FINE` ones)."""
    specimen = specimen_of(model)
    probes = probes or make_probes(specimen.spec.shape)
    if specimen.check_layer(layer) > 0:
        keep = [i for i, name in enumerate(probes.classes) if name not in FINE]
    else:
        keep = [i for i, kind in enumerate(probes.kinds) if kind in ("line", "edge")]
    return ProbeSet(
        probes.images[keep], [probes.classes[i] for i in keep], [probes.kinds[i] for i in keep]
    )


_STEP = 22.5


def _angle(name: str) -> tuple[str, float, float]:
    """``(kind, angle, period)`` of a line or edge class: an edge by the direction towards its
    interior (period 360), a line by its orientation (period 180)."""
    if name in INTERIOR_OF:
        return "edge", INTERIOR_OF[name], 360.0
    return "line", float(ORIENTATION_OF[name]), 180.0


def claimed_class(responses: torch.Tensor, names: list[str], best: int) -> int:
    """The line or edge class (index into ``names``) whose claim, its orientation to within one
    probe step, covers most of a first-layer channel's tuning: the largest sum of the
    ``responses [K]`` to it and to the classes of its kind one step to either side; ``best``
    (the class answered best) where it ties or is no line or edge."""
    if names[best] not in ORIENTATION_OF:
        return best
    kind, _, period = _angle(names[best])
    same = [(i, _angle(n)[1]) for i, n in enumerate(names)
            if n in ORIENTATION_OF and _angle(n)[0] == kind]  # fmt: skip

    def covered(angle: float) -> float:
        gaps = [(a - angle) % period for _, a in same]
        return sum(float(responses[i]) for (i, _), g in zip(same, gaps, strict=True)
                   if min(g, period - g) <= _STEP + 1e-9)  # fmt: skip

    scores = {i: covered(a) for i, a in same}
    top = max(scores.values())
    return best if scores[best] >= top - 1e-9 else max(scores, key=lambda i: scores[i])


def describe_layer(
    model: nn.Module | Specimen, layer: str, probes: ProbeSet | None = None
) -> pd.DataFrame:
    """One row per channel (1-based): description (in the first layer the class
    :func:`claimed_class` names), confidence, secondary function (the best class not named, if
    it answers at least :data:`SECONDARY_RATIO` of the best), the responses to the class named
    and to that second class."""
    specimen = specimen_of(model)
    first = specimen.check_layer(layer) == 0
    responses, names = probe_responses(specimen, layer, probes_for(specimen, layer, probes))
    rows = []
    for c, r in enumerate(responses):
        order = torch.argsort(r, descending=True, stable=True)  # ties: the earlier class
        best = float(r[order[0]])
        named = claimed_class(r, names, int(order[0])) if first else int(order[0])
        other = next(int(i) for i in order if int(i) != named)  # the best class not named
        second = float(r[other])
        rest = float((r.sum() - r[order[0]]) / (len(r) - 1))
        spread = best - float(r.min())
        confidence = (best - rest) / spread if spread > 1e-9 else 0.0
        rows.append({
            "layer": layer,
            "channel": c + 1,
            "description": names[named] if best > 0 else "silent on every probe",
            "confidence": round(confidence, 4),
            "confident": confidence >= CONFIDENT,
            "secondary": names[other] if best > 0 and second >= SECONDARY_RATIO * best else "",
            "best_response": float(r[named]),
            "second_response": second,
        })  # fmt: skip
    return pd.DataFrame(rows)


def describe_model(model: nn.Module | Specimen) -> pd.DataFrame:
    """:func:`describe_layer` for every conv layer, stacked."""
    specimen = specimen_of(model)
    probes = make_probes(specimen.spec.shape)
    return pd.concat(
        [describe_layer(specimen, n, probes) for n in specimen.conv_names], ignore_index=True
    )
