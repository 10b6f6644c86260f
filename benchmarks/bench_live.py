"""Live audit benchmark: in headless Chromium, the time from a finished stroke (mouse up) to
updated scores, contributions and dissection table, for each live network, and the bytes the
embedded weights add to ``index.html``.

    python benchmarks/bench_live.py [--run runs-bench/default-seed1] [--strokes 20]

The run folder is read, not changed: its networks are exported (the ``live`` stage's function)
into a temporary copy that links every other stage. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.common import ROOT, emit
from reports.build import report_context
from reports.config import RunConfig
from reports.html import render_html
from reports.live import run_live
from reports.pipeline import StageContext

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def linked_run(run_dir: Path, tmp: Path) -> Path:
    """A copy of ``run_dir`` whose stages are symlinks, with a freshly made ``live`` stage."""
    copy = tmp / run_dir.name
    copy.mkdir()
    for entry in run_dir.iterdir():
        if entry.name not in ("live", "report"):
            (copy / entry.name).symlink_to(entry.resolve())
    out = copy / "live"
    ctx = StageContext(RunConfig(), copy, out, True, torch.device("cpu"))
    summary = run_live(ctx)
    (out / "stage.json").write_text(
        json.dumps({"finished": True, "summary": summary, "seconds": 0.0, "finished_at": ""})
    )
    return copy


def stroke(page, box: dict, k: int) -> None:
    """A slanted zig-zag, a little different each time."""
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    points = [(0.3 + 0.01 * k, 0.2), (0.7, 0.25), (0.4, 0.8), (0.65 - 0.01 * k, 0.75)]
    page.mouse.move(x0 + w * points[0][0], y0 + h * points[0][1])
    page.mouse.down()
    for px, py in points[1:]:
        page.mouse.move(x0 + w * px, y0 + h * py, steps=6)
    page.mouse.up()


def measure(index: Path, strokes: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(index.resolve().as_uri())
        canvas = page.locator("#live-canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        found = {}
        for key in page.eval_on_selector_all("#live-net option", "os => os.map(o => o.value)"):
            page.evaluate("k => window.liveAudit.setNetwork(k)", key)
            times = []
            for k in range(strokes):
                page.evaluate("window.liveAudit.clear()")
                stroke(page, box, k)
                times.append(page.evaluate("window.liveAudit.timing().lastUpdateMs"))
            found[key] = {
                "stroke_to_contributions_ms_median": round(statistics.median(times), 2),
                "stroke_to_contributions_ms_max": round(max(times), 2),
                "under_50_ms": max(times) < 50,
            }
        browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs-bench" / "default-seed1")
    parser.add_argument("--strokes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = linked_run(args.run.resolve(), Path(tmp))
        context = report_context(run)
        with_live = render_html(context).encode()
        without = render_html({**context, "live": None}).encode()
        index = Path(tmp) / "index.html"
        index.write_bytes(with_live)
        timings = measure(index, args.strokes)
        live_json = (run / "live" / "live.json").stat().st_size
    emit(
        {
            "run": str(args.run),
            "index_html_bytes": len(with_live),
            "live_audit_adds_bytes": len(with_live) - len(without),
            "live_json_bytes": live_json,
            "networks": timings,
        }
    )


if __name__ == "__main__":
    main()
