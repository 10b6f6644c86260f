"""The report's first page in words, drawn from the sections the report already holds.

Pure functions of the report context (plain dicts and verdicts), so each sentence is easy to
test: the networks and their accuracy, the claims with their verdicts, what each class rests on,
how far the test digits confirmed the explanations' claims, and where to look next.
"""

from __future__ import annotations

import re
from typing import Any

from reports.verdicts import CHECK_KINDS

__all__ = ["headline", "summary"]

#: The section (anchor, title) that holds the evidence of each claim, by the claim's first words.
CLAIM_SECTIONS = {
    "Pruning": ("pruning", "Pruning"),
    "conv3": ("pruning", "Pruning"),
    "conv1 filters": ("first-layer", "First layer side by side"),
    "Hand-built": ("overview", "Overview"),
}

#: At most this many pointers to what to read next (the summary is one page).
NEXT = 5

_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[A-Z])")
_BUILT_FROM = re.compile(r", built from [^;]*?(?=;|\.$)")


_OPENING = re.compile(r"^An? (\S+) is mostly ")
_CHANNEL = re.compile(r" \(\w+ channel (\d+)\)")


def headline(paragraph: str) -> str:
    """The first sentence of a class's reasoning, shortened: which channels of the last conv
    layer (``#`` and their number) carry the class and how much of its score each carries,
    without the ``built from ...`` clauses."""
    first = _SENTENCE_END.split(paragraph.strip(), maxsplit=1)[0]
    short = _CHANNEL.sub(r" (#\1)", _BUILT_FROM.sub("", first)).replace("; then ", "; ")
    return _OPENING.sub(r"\1: ", short)


def _reasoning(dissections: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Headlines of the first network whose classes are explained in words."""
    for d in dissections:
        if d.get("reasoning"):
            return {"title": d["title"], "headlines": [headline(p) for p in d["reasoning"]]}
    return None


#: Short column heads of the summary's table of checked claims, by kind.
_CHECK_HEADS = {
    "driver: recall": "drivers: recall",
    "driver: margin": "drivers: margin",
    "inner: margin": "inner channels",
    "role: weak": "weak rows",
    "role: reinforces": "reinforcing rows",
    "description: strokes": "conv1 on strokes",
}


def _confirmed(scorecard: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A small table: per network, how many claims of each kind held on the test digits
    (``"h of n"``), the share of confidently described channels and the largest error of the
    exact decompositions; ``None`` when nothing was measured."""
    kinds = [k for k in _CHECK_HEADS if any(k in (r.get("checks") or {}) for r in scorecard)]
    rows = []
    for row in scorecard:
        checks = row.get("checks") or {}
        if not checks and row.get("confident_share") is None:
            continue
        share, error = row.get("confident_share"), row.get("decomposition_error")
        rows.append({
            "network": row["network"],
            "cells": [f"{checks[k][0]} of {checks[k][1]}" if k in checks else "" for k in kinds],
            "confident": "" if share is None else f"{share:.0%}",
            "error": "" if error is None else f"{error:.1g}",
        })  # fmt: skip
    if not rows:
        return None
    return {"heads": [_CHECK_HEADS[k] for k in kinds], "rows": rows}


def _weakest(scorecard: list[dict[str, Any]]) -> tuple[str, str, int, int] | None:
    """``(network, kind, hold, claims)`` of the kind of claim confirmed least (by share)."""
    cells = [(h / n, row["network"], kind, h, n) for row in scorecard
             for kind, (h, n) in (row.get("checks") or {}).items() if n]  # fmt: skip
    if not cells:
        return None
    _, network, kind, h, n = min(cells)
    return network, kind, h, n


def _most_confused(confusion: dict[str, Any]) -> tuple[int, int, int] | None:
    """``(true, predicted, count)`` of the largest off-diagonal cell, ``None`` without mistakes."""
    cells = [
        (n, t, p)
        for t, row in enumerate(confusion["counts"])
        for p, n in enumerate(row)
        if t != p and n
    ]
    if not cells:
        return None
    n, t, p = max(cells)
    return t, p, n


def _next(context: dict[str, Any]) -> list[dict[str, str]]:
    """What to look at next: claims that did not hold, the commonest mistake, the network
    whose explanations were confirmed least, and the stages still to run."""
    out = []
    for v in context["verdicts"]["claims"]:
        if v.verdict in ("fails", "partly"):
            href, title = next(
                (s for k, s in CLAIM_SECTIONS.items() if v.claim.startswith(k)),
                ("claims", "Claims and verdicts"),
            )
            claim = v.claim.rstrip(".")
            out.append({"text": f"Why “{claim}” {v.verdict}: {title}.", "href": href})
    for cm in context["confusions"][:1]:
        worst = _most_confused(cm)
        if worst:
            t, p, n = worst
            out.append({"text": f"{cm['title']} takes a {t} for a {p} most often ({n} test "
                        "digits): its most confident mistakes.", "href": "confusion"})  # fmt: skip
    weakest = _weakest(context["verdicts"]["scorecard"])
    if weakest and weakest[2] < weakest[3]:
        network, kind, h, n = weakest
        out.append({"text": f"{network}'s claims were confirmed least for {CHECK_KINDS.get(kind, kind)} ({h} of {n}): "
                    "which of them the test digits contradict.", "href": "faithfulness"})  # fmt: skip
    for note in context["overview"]["missing"]:
        out.append({"text": f"Not measured yet: {note}.", "href": "overview"})
    return out[:NEXT]


def summary(context: dict[str, Any]) -> dict[str, Any]:
    """The summary section of the report from the other sections of ``context``."""
    return {
        "networks": [
            {"title": r["title"], "accuracy": r["accuracy"]} for r in context["overview"]["rows"]
        ],
        "claims": context["verdicts"]["claims"],
        "reasoning": _reasoning(context["dissections"]),
        "confirmed": _confirmed(context["verdicts"]["scorecard"]),
        "next": _next(context),
    }
