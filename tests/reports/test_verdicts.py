"""Verdicts computed from hand-written summaries with known answers."""

from __future__ import annotations

from reports.verdicts import (
    conv3_claim,
    handnet_claim,
    orientation_claim,
    pruning_claim,
    scorecard,
)


def test_pruning_claim_holds_within_tolerance_and_fails_beyond() -> None:
    kept = {"simpleconvnet": {"accuracy": 0.980}, "pruned": {"accuracy": 0.975}}
    lost = {"simpleconvnet": {"accuracy": 0.980}, "pruned": {"accuracy": 0.950}}
    assert pruning_claim(kept, {"parameters_kept": 0.25}).verdict == "holds"
    assert "25%" in pruning_claim(kept, {"parameters_kept": 0.25}).evidence
    assert pruning_claim(lost, {}).verdict == "fails"
    assert pruning_claim({"simpleconvnet": {"accuracy": 0.9}}, {}).verdict == "not measured"


def test_orientation_claim_needs_all_four_orientations() -> None:
    assert orientation_claim([2.0, 44.0, 91.0, 170.0, 130.0]).verdict == "holds"
    missing_diagonal = orientation_claim([0.0, 90.0, 80.0])
    assert missing_diagonal.verdict == "fails"
    assert "oriented near 0, 90 (of" in missing_diagonal.evidence
    assert orientation_claim(None).verdict == "not measured"
    assert orientation_claim([]).verdict == "fails"
    # the probe descriptions can complete what the Gabor fits miss
    assert orientation_claim([0.0, 90.0], described=[45, 135]).verdict == "holds"
    assert orientation_claim(None, described=[0, 45, 90]).verdict == "fails"


def test_handnet_claim() -> None:
    measures = {
        "simpleconvnet": {"accuracy": 0.98},
        "handnet-built": {"accuracy": 0.90},
        "handnet-free": {"accuracy": 0.975},
    }
    assert handnet_claim(measures).verdict == "holds"
    measures["handnet-free"] = {"accuracy": 0.93}
    assert handnet_claim(measures).verdict == "fails"


def test_scorecard_keeps_absent_figures_empty() -> None:
    rows = scorecard({"simpleconvnet": {"gabor_r2": 0.7}})
    assert rows == [
        {
            "network": "simpleconvnet",
            "confident_share": None,
            "gabor_r2": 0.7,
            "decomposition_error": None,
            "checks": {},
        }
    ]


def test_conv3_claim_separates_redundant_from_copying() -> None:
    def finding(redundant: bool, corr: float | None) -> dict:
        return {"redundancy": {"redundant": redundant, "evidence": "e",
                               "mean_best_correlation": corr}}  # fmt: skip

    assert conv3_claim(finding(True, 0.9)).verdict == "holds"
    partly = conv3_claim(finding(True, 0.3))
    assert partly.verdict == "partly" and "not a copy" in partly.evidence
    assert conv3_claim(finding(False, 0.9)).verdict == "fails"
    assert conv3_claim(finding(True, None)).verdict == "holds"  # older runs: redundancy only
    assert conv3_claim({}).verdict == "not measured"
