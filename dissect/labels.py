"""Channel descriptions from probe responses, with a confidence and a secondary function.

A channel's response to a probe is its largest post-ReLU activation in the central half of the
map (away from the zero-padded border); its
response to a probe class is its best response over that class's variants (widths, positions). The description is the class
it responds to most; the confidence ``(best - mean of the other classes) / (best - weakest)``
says how far the best class stands out of the channel's own range of responses (1: only the
best class excites it; 0: it responds to every class alike), so an untuned baseline response
to any bright stroke does not count as selectivity.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from dissect.activations import layer_activation
from dissect.probes import FINE, ProbeSet, make_probes
from dissect.specimen import Specimen, specimen_of

__all__ = [
    "probe_responses",
    "probes_for",
    "describe_layer",
    "describe_model",
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


def describe_layer(
    model: nn.Module | Specimen, layer: str, probes: ProbeSet | None = None
) -> pd.DataFrame:
    """One row per channel (1-based): description, confidence, secondary function,
    best and second response."""
    responses, names = probe_responses(model, layer, probes_for(model, layer, probes))
    rows = []
    for c, r in enumerate(responses):
        order = torch.argsort(r, descending=True, stable=True)  # ties: the earlier class
        best, second = float(r[order[0]]), float(r[order[1]])
        rest = float((r.sum() - r[order[0]]) / (len(r) - 1))
        spread = best - float(r.min())
        confidence = (best - rest) / spread if spread > 1e-9 else 0.0
        rows.append({
            "layer": layer,
            "channel": c + 1,
            "description": names[int(order[0])] if best > 0 else "silent on every probe",
            "confidence": round(confidence, 4),
            "confident": confidence >= CONFIDENT,
            "secondary": names[int(order[1])] if best > 0 and second >= SECONDARY_RATIO * best else "",
            "best_response": best,
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
