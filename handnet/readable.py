"""Does the network read as it is written? dissect's probe description of every channel of a
HandNet beside the description its rule or filter was written with.

A channel agrees when dissect's words (its description, without the trailing parenthesis such
as "(/)") open the written ones: "horizontal line" opens "horizontal line, reinforced along
itself, ...", "corner opening up-left" opens "corner opening up-left (horizontal line going
left, ...)". First-layer orientations moved by fine-tuning ("line at 38 degrees") are compared
at the probes' resolution (22.5 degrees: "line at 45 degrees"), and a diagonal's side is named
as the probes name it ("upper-left side of a / line").
"""

from __future__ import annotations

import re

import pandas as pd

from dissect.labels import describe_model
from handnet.filters import describe_line
from handnet.model import HandNet

__all__ = ["written_and_read", "agreement", "agrees", "PROBE_STEP"]

PROBE_STEP = 22.5  # degrees between the first layer's probe orientations


def _bare(text: str) -> str:
    return re.sub(r"\s*\(.*\)$", "", text).strip()


def _snapped(text: str) -> str:
    """Every "line at N degrees" named at the nearest probe orientation."""

    def snap(m: re.Match[str]) -> str:
        return describe_line(PROBE_STEP * round(float(m.group(1)) / PROBE_STEP))

    return re.sub(r"line at (\d+(?:\.\d+)?) degrees", snap, text)


def _canonical(text: str) -> str:
    """One spelling for the written and the probed vocabularies."""
    text = _bare(text)
    return text.replace("a line at 45 degrees", "a / line").replace(
        "a line at 135 degrees", "a \\ line"
    )


def agrees(read: str, written: str, first_layer: bool = False) -> bool:
    """Whether dissect's description ``read`` opens the ``written`` one (see the module)."""
    ours = _canonical(_snapped(_bare(written)) if first_layer else written)
    label = _canonical(read)
    return bool(label) and (ours == label or ours.startswith(label + ",")
                            or ours.startswith(label + " ("))  # fmt: skip


def written_and_read(model: HandNet, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per channel of every conv layer: ``layer``, ``channel`` (1-based), ``written``,
    ``read`` (dissect's description), ``confidence``, ``secondary`` and ``agrees``.
    ``labels``: :func:`~dissect.labels.describe_model`'s table of ``model`` (computed when
    absent)."""
    table = describe_model(model) if labels is None else labels
    rows = []
    for i, (layer, written) in enumerate(model.descriptions().items()):
        read = table[table["layer"] == layer].sort_values("channel")
        for c, (words, row) in enumerate(zip(written, read.itertuples(), strict=True)):
            secondary = "" if pd.isna(row.secondary) else str(row.secondary)
            rows.append({"layer": layer, "channel": c + 1, "written": words,
                         "read": str(row.description), "confidence": float(row.confidence),
                         "secondary": secondary,
                         "agrees": agrees(str(row.description), words, first_layer=i == 0)})  # fmt: skip
    return pd.DataFrame(rows)


def agreement(table: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """Per layer and ``"all"``: ``agreeing`` channels, ``channels`` and their ``share``."""
    out: dict[str, dict[str, float | int]] = {}
    for name, part in [*table.groupby("layer", sort=False), ("all", table)]:
        n, k = len(part), int(part["agrees"].sum())
        out[str(name)] = {"agreeing": k, "channels": n, "share": k / n if n else 0.0}
    return out
