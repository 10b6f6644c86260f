"""The report's first page in words, drawn from the sections the report already holds.

Pure functions of the report context (plain dicts and verdicts), so each sentence is easy to
test: the networks and their accuracy, the claims with their verdicts, what each class rests on,
how far the ablations confirmed the explanations, and where to look next.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["headline", "summary"]

#: The section (anchor, title) that holds the evidence of each claim, by the claim's first words.
CLAIM_SECTIONS = {
    "Pruning": ("pruning", "Pruning"),
    "conv3": ("pruning", "Pruning"),
    "conv1 filters": ("first-layer", "First layer side by side"),
    "Hand-built": ("overview", "Overview"),
}

_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[A-Z])")
_BUILT_FROM = re.compile(r", built from [^;]*?(?=;|\.$)")


def headline(paragraph: str) -> str:
    """The first sentence of a class's reasoning without its ``built from ...`` clauses:
    which channels carry the class, and how much of its score each carries."""
    first = _SENTENCE_END.split(paragraph.strip(), maxsplit=1)[0]
    return _BUILT_FROM.sub("", first)


def _reasoning(dissections: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Headlines of the first network whose classes are explained in words."""
    for d in dissections:
        if d.get("reasoning"):
            return {"title": d["title"], "headlines": [headline(p) for p in d["reasoning"]]}
    return None


def _confirmed(scorecard: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in scorecard:
        parts = []
        if row.get("ablation_agreement") is not None:
            parts.append(
                f"switching channels off confirmed {row['ablation_agreement']:.0%} of what its "
                "contribution tables claim"
            )
        if row.get("confident_share") is not None:
            parts.append(f"{row['confident_share']:.0%} of its channels have a confident label")
        if row.get("decomposition_error") is not None:
            parts.append(f"its exact decompositions are off by {row['decomposition_error']:.1g}")
        if parts:
            out.append(f"{row['network']}: " + "; ".join(parts) + ".")
    return out


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
    rated = [r for r in context["verdicts"]["scorecard"] if r.get("ablation_agreement") is not None]
    if rated:
        low = min(rated, key=lambda r: r["ablation_agreement"])
        out.append({"text": f"{low['network']}'s explanations were confirmed least "
                    f"({low['ablation_agreement']:.0%}): which of its claims the ablations "
                    "contradict.", "href": "faithfulness"})  # fmt: skip
    for note in context["overview"]["missing"]:
        out.append({"text": f"Not measured yet: {note}.", "href": "overview"})
    return out


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
