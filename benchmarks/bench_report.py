"""Report benchmarks: the time of each stage of ``reports run`` from scratch and of a second run
with nothing changed (every stage reused); then, on that run's report, the report stage's own
time (HTML + PDF), the PDF's page count, where its main body ends and its summary ends, and the
live audit's time from a finished stroke to updated contributions in headless Chromium.

    python benchmarks/bench_report.py [--name bench-report] [--keep] [--strokes 20]
    python benchmarks/bench_report.py --run runs/default      # an existing run, left unchanged

Prints JSON. Targets: pipeline under 8 minutes of compute and at most 2.5 times the training
of the unpruned net (the stages' times summed over the train stage's), second run under 30 s,
main body at most 30 pages, summary on one page (it ends with a page break: the contents start
on page 2), live audit under 50 ms. Installation time is not included (see ``make report``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a script from the root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, emit, run_cli  # noqa: E402

MAIN_PAGES, LIVE_MS = 30, 50


def timed_run(name: str) -> float:
    t0 = time.perf_counter()
    run_cli("reports", "run", "--name", name, "--quiet")
    return time.perf_counter() - t0


def pdf_layout(pdf: Path) -> dict[str, Any]:
    """Page count, the first page of the appendix and the page where the contents start (the
    summary, which ends with a page break, fills the pages before), read with ``pdftotext``."""
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    pages = text.stdout.split("\f")[:-1] or [""]
    appendix = next(
        (i + 1 for i, p in enumerate(pages) if p.lstrip().startswith("Appendix\n")), None
    )
    contents = next((i + 1 for i, p in enumerate(pages) if "\nContents\n" in f"\n{p}"), None)
    main = (appendix - 1) if appendix else len(pages)
    return {"pages": len(pages), "main_body_pages": main, "appendix_from_page": appendix,
            "contents_on_page": contents, "main_body_within_30_pages": main <= MAIN_PAGES,
            "summary_on_one_page": contents == 2}  # fmt: skip


def report_stage(run_dir: Path, strokes: int) -> dict[str, Any]:
    """The report of ``run_dir`` written afresh into a temporary folder: its time, the PDF's
    layout and the live audit's timing."""
    from benchmarks.bench_live import measure
    from reports.build import build_report

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        t0 = time.perf_counter()
        written = build_report(run_dir, out, quiet=True, warn=False)
        seconds = time.perf_counter() - t0
        found: dict[str, Any] = {"report_stage_s": round(seconds, 1),
                                 "index_html_bytes": written["html"].stat().st_size}  # fmt: skip
        if "pdf" in written and shutil.which("pdftotext"):
            found |= pdf_layout(written["pdf"])
        if Path("/usr/bin/chromium").exists():
            live = measure(written["html"], strokes)
            found["live"] = live
            found["live_under_50_ms"] = all(
                v["stroke_to_contributions_ms_max"] < LIVE_MS for v in live.values()
            )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="bench-report", help="run name under runs/")
    parser.add_argument("--keep", action="store_true", help="reuse an existing run folder")
    parser.add_argument("--run", type=Path, help="measure only the report of this finished run")
    parser.add_argument("--strokes", type=int, default=20, help="strokes drawn per live network")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    run_dir = args.run.resolve() if args.run else ROOT / "runs" / args.name
    if args.run is None:
        if run_dir.exists() and not args.keep:
            shutil.rmtree(run_dir)
        first = timed_run(args.name)
        second = timed_run(args.name)
        figures |= {"first_run_s": round(first, 1), "second_run_s": round(second, 1),
                    "first_run_under_8_min": first < 480, "second_run_under_30_s": second < 30}  # fmt: skip
    figures["stages_s"] = stages = {
        p.parent.name: json.loads(p.read_text())["seconds"]
        for p in sorted(run_dir.glob("*/stage.json"))
    }
    if stages.get("train"):
        # the pipeline's cost in units of training the unpruned net once, in the same run
        ratio = sum(stages.values()) / stages["train"]
        figures |= {
            "pipeline_over_train": round(ratio, 2),
            "pipeline_over_train_le_2_5": ratio <= 2.5,
        }
    figures |= report_stage(run_dir, args.strokes)
    emit({"run": str(run_dir), **figures})


if __name__ == "__main__":
    main()
