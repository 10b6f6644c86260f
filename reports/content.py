"""Gather what the report shows from a run folder: one function per section.

Each section function returns a dict for the template. When a stage it needs has not
finished, the dict holds ``missing``: which stage, and the command that produces it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import figures
from reports.pipeline import RUN_FILE, read_record
from reports.stages import NETWORKS, Network

__all__ = ["RunView", "data_uri", "file_uri", "missing_note", "overview", "confusion_section"]


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


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
        self._images: np.ndarray | None = None

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
                    return f"stage '{stage}' could not run on this install: {reason}"
                return missing_note(self.run_dir, stage)
        return None

    def test_images(self) -> np.ndarray:
        """Test images ``[N, 28, 28]`` in [0, 1], as the trained net saw them."""
        if self._images is None:
            from dissect.infra.checkpoints import load_checkpoint_data, read_metadata

            meta = read_metadata(self.run_dir / self.summary("train")["checkpoint"])
            images, _ = load_checkpoint_data(meta, "test")
            self._images = images[:, 0].numpy()
        return self._images


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
    return {"rows": rows, "per_class": per_class, "missing": [m for m in missing if m]}


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
    frame = pd.read_csv(view.run_dir / f"measure-{net.key}" / "predictions.csv")
    images = view.test_images()
    counts = pd.crosstab(frame["label"], frame["pred"]).reindex(
        index=range(10), columns=range(10), fill_value=0
    )  # noqa: E501
    cells = {}
    for (label, pred), group in frame.groupby(["label", "pred"]):
        top = group.nlargest(per_cell, "confidence")
        cells[f"{label}-{pred}"] = [
            {"src": data_uri(figures.digit_png(images[i])), "confidence": c, "index": int(i)}
            for i, c in zip(top["index"], top["confidence"], strict=True)
        ]
    mistakes = frame[frame["label"] != frame["pred"]].nlargest(16, "confidence")
    grid = figures.digits_grid(
        images[mistakes["index"].to_numpy()],
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


def first_layer_maps(model: Any, images: np.ndarray) -> np.ndarray:
    """conv1 + ReLU of ``images [N, 28, 28]`` -> ``[N, C, 28, 28]``."""
    import torch

    with torch.no_grad():
        x = torch.as_tensor(images[:, None], dtype=torch.float32, device=model.conv1.weight.device)
        return torch.relu(model.conv1(model.normalize(x))).cpu().numpy()


def first_layer(view: RunView, samples: tuple[int, ...] = (0,)) -> list[dict[str, Any]]:
    """conv1 filters of each network, and the maps they make of a few real test digits."""
    from dissect.infra.checkpoints import load_checkpoint
    from dissect.specimen import specimen_of

    out = []
    for net in NETWORKS:
        checkpoint = view.summary(net.stage).get("checkpoint")
        if checkpoint is None:
            continue
        model, _ = load_checkpoint(view.run_dir / checkpoint)
        digits = view.test_images()[list(samples)]
        maps = first_layer_maps(model, digits)
        captions = [f"{net.title}: conv1 on test digit #{i}" for i in samples]
        out.append(
            {
                "title": net.title,
                "filters": data_uri(figures.mosaic_png(specimen_of(model).conv("conv1").weight)),
                "maps": [
                    data_uri(figures.activation_grid(d, m, c))
                    for d, m, c in zip(digits, maps, captions, strict=True)
                ],
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
    from reports.verdicts import SCORE_FIELDS, claims, scorecard

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
    }


def csv_table(path: Path, max_rows: int | None = None, digits: int = 3) -> dict[str, Any] | None:
    """A CSV a stage wrote, as ``{"columns", "rows"}`` for the template's table macro."""
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    return frame_table(frame if max_rows is None else frame.head(max_rows), digits)


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
    return frame_table(gone)


def frame_table(frame: pd.DataFrame, digits: int = 3) -> dict[str, Any]:
    frame = frame.round(digits)
    rows = [["" if pd.isna(v) else v for v in row] for row in frame.itertuples(index=False)]
    return {"columns": [str(c) for c in frame.columns], "rows": rows}


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
        "history": csv_table(history),
        "removed": removed_channels(folder),
        "redundancy": (summary.get("redundancy") or {}).get("evidence"),
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
            "table": csv_table(png.with_suffix(".csv")),
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
        "labels": csv_table(folder / "labels.csv"),
        "gabor": csv_table(folder / "gabor.csv"),
        "probes": file_uri(probes) if probes.is_file() else None,
        "channels": channel_dissections(explain) or channel_dissections(folder),
        "head": csv_table(explain / "head.csv") or csv_table(folder / "head.csv"),
        "reasoning": _paragraphs(explain / "reasoning.txt"),
        "ablation": csv_table(explain / "agreement.csv") or csv_table(folder / "ablation.csv"),
        "audits": read_audits(folder / "audit.json"),
    }


def dissections(view: RunView) -> list[dict[str, Any]]:
    return [d for d in (dissection(view, n) for n in NETWORKS) if d is not None]
