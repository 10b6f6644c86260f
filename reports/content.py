"""Gather what the report shows from a run folder: one function per section.

Each section function returns a dict for the template. When a stage it needs has not
finished, the dict holds ``missing``: which stage, and the command that produces it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import figures
from reports.networks import NETWORKS, Network
from reports.pipeline import RUN_FILE, read_record
from reports.tables import TOP_ROWS, csv_table, data_uri, frame_table

__all__ = ["RunView", "data_uri", "file_uri", "missing_note", "overview", "confusion_section"]


MIME = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}


def file_uri(path: Path) -> str:
    """An image file a stage wrote, embedded so the HTML stays one self-contained file."""
    return data_uri(path.read_bytes(), MIME[path.suffix.lower()])


class RunView:
    """Read access to a run folder: its settings, stage records and test images."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        path = self.run_dir / RUN_FILE
        self.config: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.run_dir.name))

    def record(self, stage: str) -> dict[str, Any] | None:
        return read_record(self.run_dir / stage)

    def summary(self, stage: str) -> dict[str, Any]:
        return (self.record(stage) or {}).get("summary", {})

    def missing(self, *stages: str) -> str | None:
        """A note naming the first of ``stages`` that has not finished, else ``None``."""
        for stage in stages:
            if self.record(stage) is None:
                reason = (read_record(self.run_dir / stage, finished=False) or {}).get(
                    "unavailable"
                )
                if reason:
                    return f"stage '{stage}' is not available: {reason}"
                return missing_note(self.run_dir, stage)
        return None


def missing_note(run_dir: Path, stage: str) -> str:
    root = run_dir.parent
    where = "" if root == Path("runs") else f" --runs-root {root}"
    return (
        f"stage '{stage}' has not finished in {run_dir}: produce it with "
        f"`reports run --name {run_dir.name}{where}`"
    )


def available_networks(view: RunView) -> list[Network]:
    return [n for n in NETWORKS if view.record(f"measure-{n.key}") is not None]


def overview(view: RunView) -> dict[str, Any]:
    rows, per_class = [], []
    for net in available_networks(view):
        m = view.summary(f"measure-{net.key}")
        producer = view.record(net.stage) or {}
        rows.append(
            {
                "title": net.title,
                "accuracy": m["accuracy"],
                "parameters": m["parameters"],
                "conv_flops": 2 * m["conv_macs"],
                "widths": "-".join(str(w) for w in m["conv_widths"]),
                "seconds": producer.get("seconds", float("nan")),
            }
        )
        per_class.append(
            {"title": net.title, "values": [m["per_class"][str(k)] for k in range(10)]}
        )  # noqa: E501
    missing = list(dict.fromkeys(view.missing(n.stage, f"measure-{n.key}") for n in NETWORKS))
    return {"rows": rows, "per_class": per_class, "missing": [m for m in missing if m],
            "hand_built": hand_built_note(view.summary("handnet-build"))}  # fmt: skip


def hand_built_note(summary: dict[str, Any]) -> str:
    """How the hand-built HandNet's head was fitted, in a sentence ("" before that stage ran
    or for a run written before the figures were recorded)."""
    head = summary.get("head") or {}
    if not {"l2", "copies", "fit_digits"} <= head.keys():
        return ""
    copies = int(head["copies"]) - 1
    also = f" and {copies} copies of them augmented as the data set trains" if copies else ""
    return (
        "HandNet (hand-built) has no gradient on any conv weight: its filters and rules are "
        "written, and its head is a logistic regression on their frozen features of "
        f"{int(head['fit_digits']):,} training digits{also}, with the L2 penalty "
        f"{float(head['l2']):g} chosen on the validation digits."
    )


def stage_times(view: RunView) -> list[dict[str, Any]]:
    rows = []
    for folder in sorted(p for p in view.run_dir.iterdir() if p.is_dir()):
        record = read_record(folder)
        if record is not None:
            rows.append(
                {"stage": folder.name, "seconds": record["seconds"], "at": record["finished_at"]}
            )
    return rows


def training(view: RunView) -> dict[str, Any]:
    note = view.missing("train")
    if note:
        return {"missing": note}
    history = pd.read_csv(view.run_dir / "train" / "history.csv")
    return {"plot": data_uri(figures.history_plot(history, "SimpleConvNet training"))}


def confusion_section(view: RunView, net: Network, per_cell: int = 4) -> dict[str, Any]:
    """Counts per (true, predicted) cell, with the most confident examples of each cell."""
    folder = view.run_dir / f"measure-{net.key}"
    frame = pd.read_csv(folder / "predictions.csv")
    images = example_digits(folder / "examples.npz")
    counts = pd.crosstab(frame["label"], frame["pred"]).reindex(
        index=range(10), columns=range(10), fill_value=0
    )  # noqa: E501
    # a run measured before examples.npz existed has counts but no digits to show
    shown = frame[frame["index"].isin(list(images))]
    cells = {}
    for (label, pred), group in shown.groupby(["label", "pred"]):
        top = group.nlargest(per_cell, "confidence")
        cells[f"{label}-{pred}"] = [
            {"src": data_uri(figures.digit_png(images[i])), "confidence": c, "index": int(i)}
            for i, c in zip(top["index"], top["confidence"], strict=True)
        ]
    mistakes = shown[shown["label"] != shown["pred"]].nlargest(16, "confidence")
    grid = figures.digits_grid(
        np.stack([images[int(i)] for i in mistakes["index"]]),
        [f"{t}->{p} ({c:.2f})" for t, p, c in zip(mistakes["label"], mistakes["pred"], mistakes["confidence"], strict=True)],  # noqa: E501
    ) if len(mistakes) else None  # fmt: skip
    return {
        "key": net.key,
        "title": net.title,
        "counts": counts.to_numpy().tolist(),
        "max": int(counts.to_numpy().max()),
        "cells": cells,
        "mistakes": data_uri(grid) if grid else None,
    }


def example_digits(path: Path) -> dict[int, np.ndarray]:
    """The test digits a measure stage kept for the confusion section, by test-set index."""
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {int(i): image for i, image in zip(data["index"], data["images"], strict=True)}


def first_layer(view: RunView) -> list[dict[str, Any]]:
    """conv1 filters of each network, and the maps they make of a real test digit."""
    out = []
    for net in NETWORKS:
        folder = view.run_dir / f"dissect-{net.key}"
        filters, maps = folder / "conv1-filters.png", folder / "conv1-maps.png"
        if view.record(folder.name) is None or not filters.is_file():
            continue
        out.append(
            {
                "title": net.title,
                "filters": file_uri(filters),
                "maps": [file_uri(maps)] if maps.is_file() else [],
            }
        )
    return out


def animations(view: RunView) -> list[dict[str, Any]]:
    from safetensors.torch import load_file

    out = []
    for title, stage in (
        ("SimpleConvNet training", "train"),
        ("HandNet free fine-tune", "handnet-free"),
        ("HandNet constrained fine-tune", "handnet-constrained"),
    ):  # noqa: E501
        path = view.run_dir / stage / "snapshots.safetensors"
        if view.record(stage) is None or not path.is_file():
            continue
        frames = load_file(str(path))
        last = frames[sorted(frames)[-1]]
        out.append(
            {
                "title": title,
                "frames": len(frames),
                "gif": data_uri(figures.filter_animation(frames), "image/gif"),
                "still": data_uri(figures.mosaic_png(last)),
            }
        )
    return out


def images_in(folder: Path, pattern: str = "*.png") -> list[dict[str, str]]:
    """Every image matching ``pattern`` in ``folder``, captioned by its file name."""
    return [
        {"name": p.stem.replace("_", " "), "src": file_uri(p)} for p in sorted(folder.glob(pattern))
    ]


def removed_channels(folder: Path) -> dict[str, Any] | None:
    """The channels each pruning iteration cut, with the scores that condemned them."""
    path = folder / "scores.csv"
    if not path.is_file():
        return csv_table(folder / "removed.csv")
    scores = pd.read_csv(path)
    gone = scores[~scores["kept"].astype(bool)].drop(columns=["kept", "channel"])
    return frame_table(gone, top=TOP_ROWS, name="prune-removed.csv")


def pruning(view: RunView) -> dict[str, Any]:
    note = view.missing("prune")
    if note:
        return {"missing": note}
    folder, summary = view.run_dir / "prune", view.summary("prune")
    history = folder / "history.csv"
    plots = images_in(folder, "history*.png")
    if not plots and history.is_file():
        frame = pd.read_csv(history)
        ys = [c for c in frame.columns if "accuracy" in c]
        plots = [
            {
                "name": "history",
                "src": data_uri(figures.line_plot(frame, frame.columns[0], ys, "pruning")),
            }
        ]  # noqa: E501
    return {
        "plots": plots,
        # the channels each iteration removed are the table below, with their scores
        "history": csv_table(history, hide=("removed",)),
        "removed": removed_channels(folder),
        "redundancy": (summary.get("redundancy") or {}).get("evidence"),
    }
