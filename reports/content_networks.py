"""What the report shows of each network's analysis, read from the files its stages wrote:
measurements, claims and scorecard, superstimuli, dissections (descriptions, contribution
tables, class drivers, reasoning, audits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from reports.content import RunView, available_networks, file_uri, images_in
from reports.networks import NETWORKS, Network
from reports.tables import csv_table


def measures_by_network(view: RunView) -> dict[str, dict[str, Any]]:
    return {n.key: view.summary(f"measure-{n.key}") for n in available_networks(view)}


def dissections_by_network(view: RunView) -> dict[str, dict[str, Any]]:
    """The dissect and explain summaries of each network, merged (the scorecard's figures)."""
    return {
        n.key: {**view.summary(f"dissect-{n.key}"), **view.summary(f"explain-{n.key}")}
        for n in NETWORKS
        if view.record(f"dissect-{n.key}")
    }


def claims_section(view: RunView) -> dict[str, Any]:
    from reports.verdicts import CHECK_KINDS, SCORE_FIELDS, claims, scorecard

    dissections = dissections_by_network(view)
    orientations = dissections.get("simpleconvnet", {}).get("orientations")
    described = dissections.get("simpleconvnet", {}).get("described_orientations")
    titles = {n.key: n.title for n in NETWORKS}
    rows = scorecard(dissections)
    for row in rows:
        row["network"] = titles[row["network"]]
    return {
        "claims": claims(measures_by_network(view), view.summary("prune"), orientations, described),
        "scorecard": rows,
        "fields": SCORE_FIELDS,
        "kinds": {k: v for k, v in CHECK_KINDS.items() if any(k in r["checks"] for r in rows)},
        "draws": max((int(d.get("check_draws") or 0) for d in dissections.values()), default=0),
    }


def superstimuli(view: RunView) -> list[dict[str, Any]]:
    """Per network: one grid per layer (``conv1.png``...) and ``classes.png``."""
    out = []
    for net in NETWORKS:
        folder = view.run_dir / f"superstimuli-{net.key}"
        if view.record(folder.name) is not None:
            out.append({"title": net.title, "images": images_in(folder)})
    return out


def channel_dissections(folder: Path) -> list[dict[str, Any]]:
    """``channels/<layer>-<NN>.png`` figures, each with the contribution table beside it."""
    return [
        {
            "name": png.stem,
            "figure": file_uri(png),
            "table": csv_table(png.with_suffix(".csv"), top=None),
        }
        for png in sorted((folder / "channels").glob("*.png"))
    ]


def read_audits(path: Path) -> list[dict[str, Any]]:
    """The sample audits a dissect stage wrote, with their digit images embedded."""
    audits = json.loads(path.read_text()) if path.is_file() else []
    for a in audits:
        image = path.parent / str(a.get("image", ""))
        a["image"] = file_uri(image) if a.get("image") and image.is_file() else None
    return audits


def read_back(path: Path) -> dict[str, Any] | None:
    """How many channels of a hand-built network dissect's probes read as written, in all and
    per layer (``[(layer, agreeing, channels)]``), from the dissect stage's ``written.csv``."""
    from handnet.readable import agreement

    if not path.is_file():
        return None
    counts = agreement(pd.read_csv(path))
    total = counts.pop("all")
    layers = [(name, c["agreeing"], c["channels"]) for name, c in counts.items()]
    return {"agreeing": total["agreeing"], "channels": total["channels"], "layers": layers}


def _paragraphs(path: Path) -> list[str]:
    return [p for p in path.read_text().split("\n\n") if p.strip()] if path.is_file() else []


def dissection(view: RunView, net: Network) -> dict[str, Any] | None:
    """What the dissect stage of ``net`` wrote, or ``None`` when it has not run."""
    folder = view.run_dir / f"dissect-{net.key}"
    explain = view.run_dir / f"explain-{net.key}"
    if view.record(folder.name) is None:
        return None
    probes = folder / "probes.png"
    return {
        "key": net.key,
        "title": net.title,
        "gabor": csv_table(folder / "gabor.csv", top=None),
        "probes": file_uri(probes) if probes.is_file() else None,
        "channels": channel_dissections(explain) or channel_dissections(folder),
        "head": csv_table(explain / "head.csv", top=None)
        or csv_table(folder / "head.csv", top=None),
        "reasoning": _paragraphs(explain / "reasoning.txt"),
        "checks": csv_table(explain / "checks.csv"),
        "coverage": csv_table(explain / "coverage.csv", top=None),
        "compiled": csv_table(explain / "compiled.csv", top=None),
        "ablation": csv_table(explain / "ablation.csv") or csv_table(folder / "ablation.csv"),
        "audits": read_audits(folder / "audit.json"),
        "written": csv_table(folder / "written.csv", top=None),
        "read_back": read_back(folder / "written.csv"),
    }


def dissections(view: RunView) -> list[dict[str, Any]]:
    return [d for d in (dissection(view, n) for n in NETWORKS) if d is not None]
