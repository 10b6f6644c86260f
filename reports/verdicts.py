"""The study's claims with our measured verdicts, and the interpretability scorecard.

Pure functions of the stage summaries (plain dicts), so each verdict is easy to test.
A verdict is ``holds``, ``partly``, ``fails`` or ``not measured`` with the evidence in one
sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simpleconvnet.redundancy import COPY_CORRELATION

__all__ = [
    "Verdict",
    "claims",
    "pruning_claim",
    "handnet_claim",
    "orientation_claim",
    "conv3_claim",
    "scorecard",
    "SCORE_FIELDS",
    "CHECK_KINDS",
]

#: Accuracy differences within this many points count as "on par" / "kept".
TOLERANCE = 0.01
ORIENTATIONS = (0, 45, 90, 135)


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str
    evidence: str


def _acc(measures: dict[str, dict[str, Any]], key: str) -> float | None:
    return measures.get(key, {}).get("accuracy")


def pruning_claim(measures: dict[str, dict[str, Any]], prune: dict[str, Any]) -> Verdict:
    claim = "Pruning plus retraining keeps accuracy."
    before, after = _acc(measures, "simpleconvnet"), _acc(measures, "pruned")
    if before is None or after is None:
        return Verdict(claim, "not measured", "the pruned network is not available")
    kept = prune.get("parameters_kept")
    size = f" with {kept:.0%} of the parameters" if isinstance(kept, float) else ""
    ok = after >= before - TOLERANCE
    return Verdict(
        claim, "holds" if ok else "fails",
        f"test accuracy {before:.2%} before, {after:.2%} after pruning{size} "
        f"(tolerance {TOLERANCE:.0%})",
    )  # fmt: skip


def conv3_claim(prune: dict[str, Any]) -> Verdict:
    """``holds`` when conv3 could go and its channels copy conv2 channels; ``partly`` when it
    could go but its channels recombine conv2 (mean best correlation below
    :data:`~simpleconvnet.redundancy.COPY_CORRELATION`); ``fails`` when it was needed."""
    claim = "conv3 only copies conv2 (the third layer is redundant)."
    finding = prune.get("redundancy")
    if not finding:
        return Verdict(claim, "not measured", "the pruning stage reported no redundancy test")
    evidence = str(finding.get("evidence", ""))
    if not finding.get("redundant"):
        return Verdict(claim, "fails", evidence)
    corr = finding.get("mean_best_correlation")
    if isinstance(corr, float) and corr < COPY_CORRELATION:
        return Verdict(claim, "partly", f"redundant, but not a copy: {evidence}")
    return Verdict(claim, "holds", evidence)


def orientation_claim(
    orientations: list[float] | None, described: list[int] | None = None
) -> Verdict:
    """``orientations``: degrees of the conv1 Gabor fits that are not noise-like; ``described``:
    the orientations named by conv1's confident probe descriptions (lines and edges)."""
    claim = "conv1 filters span the line orientations 0/45/90/135 degrees."
    if orientations is None and described is None:
        return Verdict(
            claim, "not measured", "no Gabor fits or descriptions of conv1 are available"
        )
    fitted = orientations or []
    near = [
        t
        for t in ORIENTATIONS
        if any(min(abs(o - t) % 180, 180 - abs(o - t) % 180) <= 22.5 for o in fitted)
    ]
    named = [t for t in ORIENTATIONS if t in (described or [])]
    covered = sorted(set(near) | set(named))
    return Verdict(
        claim, "holds" if len(covered) == len(ORIENTATIONS) else "fails",
        f"confident probe descriptions name {', '.join(map(str, named)) or 'none'}; "
        f"{len(fitted)} filters fit a Gabor well, oriented near {', '.join(map(str, near)) or 'none'} "
        f"(of 0/45/90/135)",
    )  # fmt: skip


def handnet_claim(measures: dict[str, dict[str, Any]]) -> Verdict:
    claim = "Hand-built is worse before fine-tuning and on par after."
    ref = _acc(measures, "simpleconvnet")
    built = _acc(measures, "handnet-built")
    tuned = [
        a
        for a in (_acc(measures, "handnet-constrained"), _acc(measures, "handnet-free"))
        if a is not None
    ]  # noqa: E501
    if ref is None or built is None or not tuned:
        return Verdict(claim, "not measured", "HandNet is not available")
    ok = built < ref - TOLERANCE and max(tuned) >= ref - TOLERANCE
    return Verdict(
        claim, "holds" if ok else "fails",
        f"SimpleConvNet {ref:.2%}; HandNet hand-built {built:.2%}, after fine-tuning "
        f"{', '.join(f'{a:.2%}' for a in tuned)}",
    )  # fmt: skip


def claims(
    measures: dict[str, dict[str, Any]],
    prune: dict[str, Any],
    orientations: list[float] | None,
    described: list[int] | None = None,
) -> list[Verdict]:
    return [
        pruning_claim(measures, prune),
        conv3_claim(prune),
        orientation_claim(orientations, described),
        handnet_claim(measures),
    ]


SCORE_FIELDS = {
    "confident_share": "share of channels with a confident description",
    "gabor_r2": "mean Gabor R^2 of conv1",
    "decomposition_error": "largest error of the exact decompositions",
}

#: The kinds of checked claims (``dissect.faithfulness``, ``dissect.strokes``), in the order
#: the report shows them, with what each kind claims.
CHECK_KINDS = {
    "driver: recall": "class drivers (recall)",
    "driver: margin": "class drivers (margin)",
    "inner: margin": "inner channels of each driver (margin)",
    "role: weak": "weak rows of the contribution tables",
    "role: reinforces": "reinforcing rows of the contribution tables",
    "description: strokes": "conv1 line and edge descriptions on real strokes",
}


def scorecard(dissections: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per network from its dissection summary; absent figures stay ``None``;
    ``checks`` is ``{kind: [hold, claims]}`` of the explain stage (empty when not run)."""
    return [
        {"network": key, **{f: summary.get(f) for f in SCORE_FIELDS},
         "checks": dict(summary.get("checks") or {})}
        for key, summary in dissections.items()
    ]  # fmt: skip
