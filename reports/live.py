"""The report's live audit: the networks' effective weights for the page's own JavaScript
forward pass (``static/live.js``), and the MNIST-style centring of a drawn digit that the page
mirrors step by step.

The ``live`` stage writes ``live.json``; :func:`live_payload` reads it back for the page, so the
rendering only reads files. Weights are float32, little-endian, base64-encoded.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dissect.infra.atomic import atomic_write_text
from reports.networks import NETWORKS, Network, load_network
from reports.pipeline import StageContext, read_record

__all__ = [
    "LIVE_NETWORKS",
    "BOX",
    "SIDE",
    "center_digit",
    "area_resize",
    "export_network",
    "run_live",
    "live_payload",
]

#: The networks the page can switch between; the first is the default.
LIVE_NETWORKS = ("pruned", "handnet-constrained")
SIDE = 28  # the input grid
BOX = 20  # the side of the box the ink's bounding box is scaled to fit


def _floor_half(v: float) -> int:
    """Round half up, as JavaScript's ``Math.floor(v + 0.5)`` (Python's round is to even)."""
    return int(math.floor(v + 0.5))


def area_resize(patch: np.ndarray, height: int, width: int) -> np.ndarray:
    """``patch [h, w] -> [height, width]`` by area resampling, one axis after the other (rows
    first): output pixel ``i`` covers the source interval ``[i * h / height, (i + 1) * h /
    height)`` and takes the mean of the source over it, each source pixel weighted by the
    length of its overlap. Downscaling averages; upscaling repeats pixels and blends the one
    a boundary cuts. Total ink scales with the area; nothing is sharpened."""

    def axis(src: np.ndarray, n_out: int) -> np.ndarray:  # resample axis 0
        n_in = src.shape[0]
        out = np.zeros((n_out, *src.shape[1:]), dtype=np.float64)
        step = n_in / n_out
        for i in range(n_out):
            lo, hi = i * step, (i + 1) * step
            for s in range(int(math.floor(lo)), min(n_in, int(math.ceil(hi)))):
                overlap = min(hi, s + 1) - max(lo, s)
                if overlap > 0:
                    out[i] += overlap * src[s]
            out[i] /= step
        return out

    rows = axis(np.asarray(patch, dtype=np.float64), height)
    return axis(rows.T, width).T


def center_digit(drawn: np.ndarray) -> np.ndarray:
    """A drawn ``[28, 28]`` grid in [0, 1] -> the network's ``[28, 28]`` input, the way MNIST
    digits were made (``static/live.js`` ``centre`` does exactly the same, in float64):

    1. The ink's bounding box: the rows and columns holding a pixel above 0. No ink: all zeros.
    2. Scale factor ``20 / max(box height, box width)`` (aspect kept); the new sides are
       ``max(1, floor(side * factor + 0.5))``, so the longer side becomes exactly 20.
    3. Resample the box to the new sides with :func:`area_resize` (area, not bilinear: it keeps
       a thin stroke's ink instead of skipping it when shrinking).
    4. Centre of mass of the resized patch, in continuous coordinates (pixel ``i`` spans
       ``[i, i + 1)``, so its centre is ``i + 0.5``).
    5. Integer shift that puts that centre of mass at (14, 14): ``top = floor(14 - cy + 0.5)``,
       likewise ``left``; clamped to ``[0, 28 - side]`` so that no ink leaves the grid.
    6. Values clipped to [0, 1].
    """
    grid = np.asarray(drawn, dtype=np.float64).reshape(SIDE, SIDE)
    rows, cols = np.nonzero(grid > 0)
    out = np.zeros((SIDE, SIDE), dtype=np.float64)
    if len(rows) == 0:
        return out
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    h, w = r1 - r0, c1 - c0
    factor = BOX / max(h, w)
    nh, nw = max(1, _floor_half(h * factor)), max(1, _floor_half(w * factor))
    patch = area_resize(grid[r0:r1, c0:c1], nh, nw)
    mass = patch.sum()
    cy = float((patch.sum(1) * (np.arange(nh) + 0.5)).sum() / mass)
    cx = float((patch.sum(0) * (np.arange(nw) + 0.5)).sum() / mass)
    top = min(max(_floor_half(SIDE / 2 - cy), 0), SIDE - nh)
    left = min(max(_floor_half(SIDE / 2 - cx), 0), SIDE - nw)
    out[top : top + nh, left : left + nw] = patch
    return np.clip(out, 0.0, 1.0)


def _b64(t: torch.Tensor | np.ndarray) -> str:
    values = t.detach().cpu().float().numpy() if isinstance(t, torch.Tensor) else t
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def _layer(name: str, conv: Any, descriptions: list[str]) -> dict[str, Any]:
    weight = conv.weight.detach()  # HandNet's layers compute it from their parameters
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0])
    padding = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,) * 2
    if (
        tuple(conv.stride) != (1, 1)
        or padding[0] != padding[1]
        or weight.shape[2] != weight.shape[3]
    ):
        raise ValueError(f"{name}: the live audit needs square kernels, stride 1, even padding")
    out_ch, in_ch, k, _ = weight.shape
    return {
        "name": name, "out": out_ch, "in": in_ch, "k": k, "pad": int(padding[0]),
        "weight": _b64(weight), "bias": _b64(bias), "descriptions": descriptions,
    }  # fmt: skip


@torch.no_grad()
def export_network(
    model: Any, key: str, title: str, labels: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The effective weights of a SimpleConvNet-shaped ``model`` (normalize, conv blocks named
    in ``model.conv_names`` each conv + bias -> relu -> 2x2 maxpool, flatten, ``fc4``, ``fc5``):
    what its forward computes, as a JSON-ready dict; ``head`` is ``fc5 . fc4`` folded into one
    ``[classes, C * h * w]`` map and its bias. Every conv layer's ``weight [O, I, k, k]`` and ``bias [O]`` are read through the
    module's own properties, so HandNet's Gabor and rule layers (plain ``conv2d(x, weight,
    bias)`` in their forward) export the kernels they actually use. ``labels`` (the dissect
    stage's ``labels.csv``) gives each channel's description."""

    def described(layer: str, n: int) -> list[str]:
        found: dict[int, str] = {}
        if labels is not None:
            rows = labels[labels["layer"] == layer]
            found = {
                int(c) - 1: str(d)
                for c, d in zip(rows["channel"], rows["description"], strict=True)
            }
        return [found.get(i, f"channel {i + 1}") for i in range(n)]

    convs = []
    for name in model.conv_names:
        conv = getattr(model, name)
        convs.append(_layer(name, conv, described(name, int(conv.weight.shape[0]))))

    # no nonlinearity between fc4 and fc5: the head is the one linear map fc5(fc4(f)), folded
    # in float64 (a twentieth of fc4's size, and the per-channel split reads it directly)
    w4, b4 = model.fc4.weight.double(), model.fc4.bias.double()
    w5, b5 = model.fc5.weight.double(), model.fc5.bias.double()
    head = {"out": int(w5.shape[0]), "in": int(w4.shape[1]), "weight": _b64(w5 @ w4),
            "bias": _b64(w5 @ b4 + b5)}  # fmt: skip
    return {
        "key": key, "title": title, "mean": float(model.input_mean), "std": float(model.input_std),
        "convs": convs, "head": head, "classes": int(w5.shape[0]),
    }  # fmt: skip


def example_digits(
    images: torch.Tensor, labels: torch.Tensor, classes: int = 10
) -> list[dict[str, Any]]:
    """The first test digit of each class, as the page's pickable examples."""
    picks = []
    for k in range(classes):
        hits = (labels == k).nonzero()
        if len(hits):
            i = int(hits[0, 0])
            picks.append({"index": i, "label": k, "pixels": _b64(images[i, 0].float())})
    return picks


def run_live(ctx: StageContext) -> dict[str, Any]:
    """``live.json``: the effective weights and channel descriptions of each live network
    whose stages have finished, and a few test digits to pick."""
    from dissect.infra.checkpoints import load_checkpoint_data

    networks: list[dict[str, Any]] = []
    digits: list[dict[str, Any]] = []
    wanted: list[Network] = [n for k in LIVE_NETWORKS for n in NETWORKS if n.key == k]
    for net in wanted:
        if not ctx.record(net.stage):
            continue
        model, meta = load_network(ctx, net)
        labels_csv = ctx.run_dir / f"dissect-{net.key}" / "labels.csv"
        labels = pd.read_csv(labels_csv) if labels_csv.is_file() else None
        networks.append(export_network(model.cpu(), net.key, net.title, labels))
        if not digits:
            digits = example_digits(*load_checkpoint_data(meta, "test"))
    payload = {"version": 1, "side": SIDE, "box": BOX, "networks": networks, "digits": digits}
    atomic_write_text(ctx.out / "live.json", json.dumps(payload))
    return {"networks": [n["key"] for n in networks], "digits": len(digits)}


def live_payload(run_dir: Path) -> str | None:
    """``live.json`` of a finished ``live`` stage, made safe to sit inside a ``<script>``
    element (``<``, ``>`` and ``&`` as JSON escapes), or ``None``."""
    path = Path(run_dir) / "live" / "live.json"
    if read_record(path.parent) is None or not path.is_file():
        return None
    text = path.read_text()
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text
