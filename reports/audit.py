"""The report of one network a person brings (``reports audit``): every section of the main
report that needs no SimpleConvNet/HandNet comparison, computed straight from the dissect
functions on a :class:`~dissect.specimen.Specimen` and its test images."""

from __future__ import annotations

import math
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pandas as pd
import torch

from dissect.ablation import ablation_table
from dissect.audit import explain_prediction
from dissect.figures import image_grid_png
from dissect.gabor import first_layer_fits
from dissect.head import class_drivers, score_contributions
from dissect.infra.atomic import atomic_write_text
from dissect.infra.datasets import stratified_sample
from dissect.infra.runtime import progress
from dissect.labels import CONFIDENT, describe_model
from dissect.mistakes import confident_mistakes, predictions
from dissect.receptive import receptive_fields
from dissect.specimen import Specimen
from dissect.subject import Subject
from dissect.superstimuli import class_superstimuli, layer_superstimuli
from reports.figures import activation_grid, digits_grid, mosaic_png
from reports.html import render_html
from reports.pdf import write_pdf
from reports.tables import data_uri, frame_table

__all__ = ["audit_context", "write_audit_report", "wilson_interval"]


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``hits / n``."""
    if n == 0:
        return (math.nan, math.nan)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def _grey(images: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` -> ``[N, H, W]`` for display (channels averaged)."""
    return images.detach().float().cpu().mean(1).numpy()


def _overview(s: Specimen, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    pred, _ = predictions(s, images)
    hits = int((pred == labels).sum())
    low, high = wilson_interval(hits, len(labels))
    fields = receptive_fields(s).set_index("layer")
    layers = []
    for name in s.conv_names:
        conv = s.conv(name)
        layers.append([name, *map(int, conv.weight.shape[:2]), "x".join(map(str, conv.weight.shape[2:])),
                       "x".join(map(str, s.output_shape(name))), s.activations.get(name, "none"),
                       sum(int(p.numel()) for p in conv.parameters()),
                       f"{fields.loc[name, 'rf_height']}x{fields.loc[name, 'rf_width']}"])  # fmt: skip
    per_class = [
        [s.class_names[k], int((labels == k).sum()), float((pred[labels == k] == k).float().mean())]
        for k in range(s.num_classes)
        if (labels == k).any()
    ]
    return {
        "model": type(s.model).__name__,
        "parameters": sum(int(p.numel()) for p in s.model.parameters()),
        "input": "x".join(map(str, s.spec.shape)),
        "normalize": ", ".join(f"({m:g}, {d:g})" for m, d in zip(s.spec.mean, s.spec.std, strict=True)),
        "logits": s.logits_name,
        "accuracy": hits / max(1, len(labels)),
        "interval": (low, high),
        "images": len(labels),
        "layers": {"columns": ["layer", "out", "in per group", "kernel", "output", "then", "parameters", "receptive field (px)"], "rows": layers},
        "per_class": {"columns": ["class", "test images", "accuracy"], "rows": per_class},
    }  # fmt: skip


def _descriptions(s: Specimen) -> dict[str, Any]:
    table = describe_model(s)
    first = s.conv(s.conv_names[0]).weight.detach().cpu()
    fits, evidence = first_layer_fits(first.numpy())
    gabor = pd.DataFrame({"channel": range(1, len(fits) + 1), "R^2": [f.r2 for f in fits],
                          "orientation": [f.orientation for f in fits],
                          "noise-like": [bool(f.noise_like and evidence) for f in fits]})  # fmt: skip
    confident = table.groupby("layer", sort=False)["confident"].mean()
    shown = table[["layer", "channel", "description", "confidence", "secondary"]]
    return {
        "filters": data_uri(mosaic_png(first.sum(1, keepdim=True))),
        "first": s.conv_names[0],
        "kernel": f"{first.shape[2]}x{first.shape[3]}",
        "gabor": frame_table(gabor),
        "gabor_evidence": evidence,
        "table": frame_table(shown),
        "confident": [{"layer": k, "share": float(v)} for k, v in confident.items()],
        "threshold": CONFIDENT,
        "frame": table,
    }


def _superstimuli(
    s: Specimen, images: torch.Tensor, steps: int, quiet: bool
) -> list[dict[str, Any]]:
    out = []
    for layer in progress(s.conv_names, quiet=quiet, desc="superstimuli", leave=False):
        r = layer_superstimuli(s, layer, steps=steps, data=images)
        digits = ", ".join(str(c + 1) for c, u in enumerate(r.used) if u == "digit")
        said = (
            f"; channels {digits} were silent on a random start and began from the test image that excites them most"
            if digits
            else ""
        )
        out.append({"title": f"{layer}: one image per channel (1, 2, ... row by row){said}",
                    "src": data_uri(image_grid_png(r.images.mean(1, keepdim=True)))})  # fmt: skip
    r = class_superstimuli(s, steps=steps)
    captions = [f"{s.class_names[k]}: p={float(p):.2f}" for k, p in enumerate(r.activation)]
    out.append({"title": "classes: the study's class objective",
                "src": data_uri(digits_grid(_grey(r.images), captions, columns=10))})  # fmt: skip
    return out


def _drivers(
    s: Specimen, images: torch.Tensor, labels: torch.Tensor, descriptions: pd.DataFrame
) -> dict[str, Any]:
    layer = s.conv_names[-1]
    split = score_contributions(s, images[stratified_sample(labels, 20, seed=0)])
    drivers = class_drivers(s, images, labels)
    words = descriptions[descriptions["layer"] == layer].set_index("channel")["description"]
    top = drivers[drivers["rank"] <= 3].copy()
    top["class"] = [s.class_names[k] for k in top["class"]]
    top["description"] = [words.get(c, "") for c in top["channel"]]
    return {
        "layer": layer,
        "error": split.relative_error,
        "non_affine": ", ".join(split.non_affine),
        "residual": float(split.residual.abs().max()),
        "table": frame_table(top[["class", "rank", "channel", "description", "mean_contribution", "share"]]),
        "frame": drivers,
    }  # fmt: skip


def _dissection(
    s: Specimen, images: torch.Tensor, labels: torch.Tensor, drivers: pd.DataFrame
) -> dict[str, Any]:
    from dissect.cli_analysis import write_dissection

    layer = s.conv_names[-1]
    channel = (
        int(
            drivers[(drivers["class"] == int(labels[0])) & (drivers["rank"] == 1)]["channel"].iloc[
                0
            ]
        )
        - 1
    )
    data = images[stratified_sample(labels, 20, seed=0)]
    with TemporaryDirectory() as tmp:  # the figure and table the dissect command writes
        written = write_dissection(s, layer, channel, images[:1], Path(tmp), data=data)
        png, table = written.with_suffix(".png").read_bytes(), pd.read_csv(written)
    return {"title": f"{layer} channel {channel + 1} on test image 0", "src": data_uri(png),
            "table": frame_table(table.drop(columns=["w_sum", "w_abs_sum", "w_max", "w_min"]).head(12))}  # fmt: skip


def _confusion(s: Specimen, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    pred, _ = predictions(s, images)
    k = s.num_classes
    matrix = torch.zeros(k, k, dtype=torch.long, device=pred.device).index_put_(
        (labels, pred), torch.ones_like(labels), accumulate=True
    )
    rows = [[s.class_names[t], *matrix[t].tolist()] for t in range(k)]
    mistakes = confident_mistakes(s, images, labels, n=16)
    captions = [f"{s.class_names[t]} -> {s.class_names[p]} ({c:.2f})" for t, p, c in
                zip(mistakes["true"], mistakes["predicted"], mistakes["confidence"], strict=True)]  # fmt: skip
    gallery = (
        data_uri(digits_grid(_grey(images[mistakes["index"].tolist()]), captions))
        if len(mistakes)
        else None
    )
    return {"matrix": {"columns": ["true \\ predicted", *s.class_names], "rows": rows}, "mistakes": gallery}  # fmt: skip


def _ablations(s: Specimen, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    table = ablation_table(s, images, labels, layers=[s.conv_names[-1]])
    worst = table.sort_values("drop", ascending=False).head(10)
    return {"table": frame_table(worst[["layer", "channel", "drop"]]), "layer": s.conv_names[-1]}


def _audits(
    s: Specimen, images: torch.Tensor, labels: torch.Tensor, n: int = 4
) -> list[dict[str, Any]]:
    out = []
    for i in stratified_sample(labels, 1, seed=0)[:n].tolist():
        e = explain_prediction(s, images[i : i + 1], top=3)
        maps = s.run(images[i : i + 1], {f"{s.conv_names[0]}:post"})[f"{s.conv_names[0]}:post"][0]
        grid = activation_grid(
            _grey(images[i : i + 1])[0],
            maps.detach().cpu().numpy(),
            f"test image {i}: {s.conv_names[0]}",
        )
        out.append({"index": i, "text": e.text(int(labels[i])), "maps": data_uri(grid)})
    return out


def audit_context(
    subject: Subject, *, steps: int = 128, quiet: bool = False, description: str = ""
) -> dict[str, Any]:
    """Everything the one-network report shows, from the specimen and its test images."""
    s, x, y = subject.specimen, subject.images, subject.labels
    s.model.eval()
    r: dict[str, Any] = {}
    sections = [
        ("overview", lambda: _overview(s, x, y)),
        ("descriptions", lambda: _descriptions(s)),
        ("drivers", lambda: _drivers(s, x, y, r["descriptions"].pop("frame"))),
        ("dissection", lambda: _dissection(s, x, y, r["drivers"].pop("frame"))),
        ("superstimuli", lambda: _superstimuli(s, x, steps, quiet)),
        ("confusion", lambda: _confusion(s, x, y)),
        ("ablations", lambda: _ablations(s, x, y)),
        ("audits", lambda: _audits(s, x, y)),
    ]
    for key, make in progress(sections, quiet=quiet, desc="audit report"):
        r[key] = make()
    return {"name": subject.name, "description": description,
            "created": time.strftime("%Y-%m-%d %H:%M"), **r}  # fmt: skip


def write_audit_report(subject: Subject, out: Path, **kwargs: Any) -> dict[str, Path]:
    """``out/index.html`` (one self-contained file) and ``out/report.pdf`` (where WeasyPrint is
    installed); returns the paths written."""
    html = render_html(audit_context(subject, **kwargs), template="audit.html.j2")
    atomic_write_text(out / "index.html", html)
    paths = {"html": out / "index.html"}
    if write_pdf(html, out / "report.pdf", out, quiet=bool(kwargs.get("quiet"))):
        paths["pdf"] = out / "report.pdf"
    return paths
