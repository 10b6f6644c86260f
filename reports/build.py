"""Build ``index.html`` and ``report.pdf`` from a run folder's finished stages."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dissect.infra.atomic import atomic_write_text
from dissect.infra.errors import AuditError
from reports import content, content_networks
from reports.html import render_html
from reports.live import live_payload
from reports.networks import NETWORKS
from reports.pdf import write_pdf
from reports.summary import summary

__all__ = ["build_report", "report_context"]


def report_context(run_dir: Path) -> dict:
    view = content.RunView(run_dir)
    if not view.config and view.record("train") is None:
        raise AuditError(
            f"{run_dir} is not a run folder (no run.json, no train/stage.json): "
            "make one with `reports run --name NAME`"
        )
    nets = content.available_networks(view)
    context = {
        "name": view.name,
        "description": str(view.config.get("description", "")),
        "config": view.config,
        "created": time.strftime("%Y-%m-%d %H:%M"),
        "stages": content.stage_times(view),
        "overview": content.overview(view),
        "training": content.training(view),
        "pruning": content.pruning(view),
        "first_layer": content.first_layer(view),
        "confusions": [content.confusion_section(view, n) for n in nets],
        "animations": content.animations(view),
        "verdicts": content_networks.claims_section(view),
        "superstimuli": content_networks.superstimuli(view),
        "dissections": content_networks.dissections(view),
        "live": live_payload(run_dir),
        "notes": {
            "handnet": view.missing("handnet-build"),
            "dissect": view.missing(*(f"dissect-{n.key}" for n in NETWORKS[:1])),
            "superstimuli": view.missing(*(f"superstimuli-{n.key}" for n in NETWORKS[:1])),
        },
    }
    return {**context, "summary": summary(context)}


def build_report(
    run_dir: Path, out: Path | None = None, *, quiet: bool = False, warn: bool = True
) -> dict[str, Path]:
    """Write ``out/index.html`` and ``out/report.pdf`` (``out`` defaults to RUN_DIR/report;
    the PDF only where WeasyPrint is installed: the paths returned say what was written).

    With ``warn``, each stage the report lacks is named on stderr with the command that makes it.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    context = report_context(run_dir)
    for note in _missing_notes(context) if warn else []:
        print(f"warning: {note}", file=sys.stderr)
    html = render_html(context)
    atomic_write_text(out / "index.html", html)
    paths = {"html": out / "index.html"}
    if write_pdf(html, out / "report.pdf", out, quiet=quiet):
        paths["pdf"] = out / "report.pdf"
    if not quiet:
        print(f"report: {' and '.join(map(str, paths.values()))}", file=sys.stderr)
    return paths


def _missing_notes(context: dict) -> list[str]:
    notes = [*context["overview"]["missing"], context["training"].get("missing")]
    notes += [context["pruning"].get("missing")]
    notes += list(context["notes"].values())
    return sorted({n for n in notes if n})
