"""The summary page and the shortened tables: hand-made inputs with known answers, and the tiny
run's report (summary first, a main body, an appendix, downloads that hold the whole table)."""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from reports.summary import headline, summary
from reports.tables import frame_table
from reports.verdicts import Verdict

PARAGRAPH = (
    "A 7 is mostly 'line at 45 degrees (/)' (conv2 channel 9), 24 %, built from conv1's "
    "'horizontal line' reinforced, 'vertical line' negated; then 'right end of a horizontal "
    "line' (conv2 channel 7), 20 %, built from conv1's 'horizontal line' reinforced. It is held "
    "back by 'curve opening up' (conv2 channel 13) (-9 %). Confidently described channels carry "
    "100 % of its positive score (over 400 images)."
)


def test_headline_is_the_first_sentence_without_what_builds_each_channel() -> None:
    assert headline(PARAGRAPH) == (
        "7: 'line at 45 degrees (/)' (#9), 24 %; 'right end of a horizontal line' (#7), 20 %."
    )
    plain = "Class 3: no channel of the last conv layer adds to its score."
    assert headline(plain) == plain


def context() -> dict:
    counts = [[0] * 10 for _ in range(10)]
    counts[4][9], counts[7][1], counts[3][3] = 6, 2, 50
    return {
        "overview": {"rows": [{"title": "Net A", "accuracy": 0.9}], "missing": ["stage 'x'"]},
        "verdicts": {
            "claims": [
                Verdict("Pruning plus retraining keeps accuracy.", "holds", "fine"),
                Verdict("conv3 only copies conv2.", "partly", "recombines"),
            ],
            "scorecard": [
                {
                    "network": "Net A",
                    "confident_share": None,
                    "checks": {"driver: recall": [9, 10], "description: strokes": [6, 8]},
                },
                {"network": "Net B", "confident_share": 1.0, "checks": {"role: weak": [1, 4]}},
            ],
        },
        "dissections": [
            {"title": "Net A", "reasoning": []},
            {"title": "Net B", "reasoning": [PARAGRAPH]},
        ],
        "confusions": [{"title": "Net A", "counts": counts}],
    }


def test_summary_names_accuracy_verdicts_headlines_and_what_to_read_next() -> None:
    s = summary(context())
    assert s["networks"] == [{"title": "Net A", "accuracy": 0.9}]
    assert [v.verdict for v in s["claims"]] == ["holds", "partly"]
    assert s["reasoning"]["title"] == "Net B" and s["reasoning"]["headlines"][0].startswith("7: ")
    assert s["confirmed"] == {
        "heads": ["drivers: recall", "weak rows", "conv1 on strokes"],
        "rows": [
            {"network": "Net A", "cells": ["9 of 10", "", "6 of 8"], "confident": "", "error": ""},
            {"network": "Net B", "cells": ["", "1 of 4", ""], "confident": "100%", "error": ""},
        ],
    }
    assert [n["href"] for n in s["next"]] == ["pruning", "confusion", "faithfulness", "overview"]
    assert "takes a 4 for a 9 most often (6 test digits)" in s["next"][1]["text"]
    assert (
        "Net B's claims were confirmed least for weak rows of the contribution tables (1 of 4)"
        in s["next"][2]["text"]
    )


def test_long_table_shows_its_top_rows_and_carries_the_whole_csv() -> None:
    frame = pd.DataFrame({"channel": range(1, 26), "score": [i / 7 for i in range(25)]})
    table = frame_table(frame, top=10, name="scores.csv", hide=("channel",))
    assert len(table["rows"]) == 10 and table["columns"] == ["score"]
    assert table["note"] == "the first 10 of 25 rows; without the column channel"
    whole = base64.b64decode(table["csv"].removeprefix("data:text/csv;base64,"))
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(whole)), frame)
    assert "csv" not in frame_table(frame.head(10), top=10)


def test_report_page_downloads_the_whole_of_a_table_it_cuts_short(tiny_run: Path) -> None:
    page = (tiny_run / "report" / "index.html").read_text()
    link = re.search(r'Shown: the first 10 of (\d+) rows\. <a class="download" '
                     r'href="data:text/csv;base64,([^"]+)" download="([^"]+)"', page)  # fmt: skip
    assert link is not None
    name = html.unescape(link.group(3))  # "<stage folder>-<file name>"
    stage = next(d for d in tiny_run.iterdir() if name.startswith(f"{d.name}-"))
    whole = base64.b64decode(link.group(2))
    assert whole == (stage / name.removeprefix(f"{stage.name}-")).read_bytes()
    assert len(pd.read_csv(io.BytesIO(whole))) == int(link.group(1)) > 10
    table = page[: link.start()].rsplit("<table", 1)[1]
    assert table.count("<tr>") == 1 + 10


def pdf_pages(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    return text.split("\f")


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")
def test_pdf_opens_with_the_summary_and_ends_with_the_appendix(tiny_run: Path) -> None:
    pages = pdf_pages(tiny_run / "report" / "report.pdf")
    assert any(p.startswith("Summary") or "\nSummary\n" in p for p in pages[:2])
    assert "Test accuracy:" in "".join(pages[:2])
    assert "\nContents\n" in f"\n{pages[1]}"  # the summary is page 1, alone
    appendix = next(i for i, p in enumerate(pages) if p.lstrip().startswith("Appendix\n"))
    main, rest = "".join(pages[:appendix]), "".join(pages[appendix:])
    for title in (
        "Overview",
        "Claims and verdicts",
        "Pruning",
        "Confusion and mistakes",
        "Faithfulness",
    ):
        assert f"\n{title}\n" in main and f"\n{title}\n" not in rest
    for title in ("A1. Dissection of the outer channels", "A3. Each channel switched off",
                  "A5. Sample audit", "A7. Stages and "):  # fmt: skip
        assert title in rest and title not in main
    assert "conv2-01: contributions and roles" in rest


@pytest.mark.skipif(shutil.which("pdfdetach") is None, reason="poppler-utils is not installed")
def test_pdf_attaches_the_whole_of_each_table_it_cuts_short(tiny_run: Path) -> None:
    pdf = tiny_run / "report" / "report.pdf"
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True)
    names = re.findall(r"^\d+: (\S+\.csv)$", listing.stdout, re.MULTILINE)
    assert names, listing.stdout
    page = (tiny_run / "report" / "index.html").read_text()
    assert all(f'download="{n}"' in page for n in names)


def test_faithfulness_counts_each_kind_of_claim_checked_on_the_test_digits(tiny_run: Path) -> None:
    import json

    explain = tiny_run / "explain-pruned"
    checks = pd.read_csv(explain / "checks.csv")
    assert {"driver: recall", "driver: margin"} <= set(checks["kind"])
    # weak rows are claimed only where removing them barely moved the channel on training
    # digits: on these tiny nets there may be none
    assert list(checks["holds"]) == sorted(checks["holds"])  # the claims that fail come first
    card = json.loads((explain / "stage.json").read_text())["summary"]["checks"]
    page = (tiny_run / "report" / "index.html").read_text()
    section = page[page.index('<section id="faithfulness">') :].split("</section>", 1)[0]
    assert "class drivers (recall)" in section and "agreement of ablations" not in section
    for kind, (hold, claims) in card.items():
        mine = checks[checks["kind"] == kind]
        assert (hold, claims) == (int(mine["holds"].sum()), len(mine))
        assert f"{hold} of {claims}" in section


def test_the_pruned_nets_explanation_is_compiled_and_reported(tiny_run: Path) -> None:
    table = pd.read_csv(tiny_run / "explain-pruned" / "compiled.csv")
    assert list(table["layers from words"]) == [
        "none",
        "conv1 (conv2 as trained)",
        "conv1, conv2",
        "none",
    ]
    assert list(table["network"]) == [
        "as trained",
        "compiled",
        "compiled",
        "conv1 from its Gabor fits",
    ]
    assert table["test accuracy"].between(0, 1).all()
    assert (table["error"] - (1 - table["test accuracy"])).abs().max() < 1e-9
    assert not (tiny_run / "explain-handnet-built" / "compiled.csv").exists()
    page = (tiny_run / "report" / "index.html").read_text()
    assert "The explanation compiled back into a network" in page


def test_coverage_is_reported_per_class_probed_and_for_handnet_written(tiny_run: Path) -> None:
    scn = pd.read_csv(tiny_run / "explain-pruned" / "coverage.csv")
    hand = pd.read_csv(tiny_run / "explain-handnet-built" / "coverage.csv")
    assert len(scn) == len(hand) == 10 and "coverage_written" not in scn.columns
    assert scn["coverage_probed"].between(0, 1).all()
    # every channel of the hand-built net has a written description: it carries all of a
    # class's positive score (none where, on these tiny data, no channel adds to a class)
    assert hand["coverage_written"].round(9).isin([0.0, 1.0]).all()
    assert hand["coverage_written"].round(9).eq(1.0).any()
    assert (hand["coverage_probed"] <= hand["coverage_written"] + 1e-9).all()
    page = (tiny_run / "report" / "index.html").read_text()
    assert "by the written descriptions of the hand-built network" in page


def test_handnet_channels_are_read_back_against_their_written_words(tiny_run: Path) -> None:
    """The dissect stage of each hand-built network writes every channel's written words
    beside dissect's reading; the main body counts the agreeing ones, appendix A6 lists all."""
    built = pd.read_csv(tiny_run / "dissect-handnet-built" / "written.csv")
    assert list(built["layer"]) == ["conv1"] * 2 + ["conv2"] * 4  # the tiny run's 2,4 widths
    assert list(built["written"][:2]) == ["horizontal line", "line at 45 degrees"]
    assert not (tiny_run / "dissect-pruned" / "written.csv").exists()
    agreeing = int(built["agrees"].sum())
    page = html.unescape((tiny_run / "report" / "index.html").read_text())
    assert f"HandNet (hand-built): {agreeing} of 6 channels read as written" in page
    assert "A6. Hand-built channels read back" in page


def test_the_overview_says_how_the_hand_built_head_was_fitted(tiny_run: Path) -> None:
    import json

    from reports.content import hand_built_note

    summary = json.loads((tiny_run / "handnet-build" / "stage.json").read_text())["summary"]
    head = summary["head"]
    assert head["l2"] in (1e-3, 1e-4, 1e-2) and head["copies"] >= 1 and head["fit_digits"] > 0
    note = hand_built_note(summary)
    assert f"{head['fit_digits']:,} training digits" in note and f"{head['l2']:g}" in note
    assert note in html.unescape((tiny_run / "report" / "index.html").read_text())
    assert hand_built_note({}) == ""  # the stage did not run
    assert hand_built_note({"head": {"train_accuracy": 1.0}}) == ""  # a run from before
