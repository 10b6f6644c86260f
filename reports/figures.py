"""Figures of the report, returned as image bytes (PNG, GIF) so the HTML can embed them."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from dissect import figures as dissect_figures  # noqa: E402
from dissect.figures import Canvas  # noqa: E402

__all__ = [
    "figure_png",
    "history_plot",
    "digit_png",
    "filter_mosaic",
    "mosaic_png",
    "filter_animation",
    "digits_grid",
    "line_plot",
    "activation_grid",
    "maps_table",
]


def figure_png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _image_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def history_plot(history: pd.DataFrame, title: str) -> bytes:
    """Loss and accuracy per epoch from a ``history.csv`` frame."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 2.8))
    ax1.plot(history["epoch"], history["train_loss"], label="train")
    ax1.plot(history["epoch"], history["test_loss"], label="test")
    ax1.set(xlabel="epoch", ylabel="loss")
    ax2.plot(history["epoch"], history["train_accuracy"], label="train")
    ax2.plot(history["epoch"], history["test_accuracy"], label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return figure_png(fig)


def line_plot(frame: pd.DataFrame, x: str, ys: Sequence[str], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 2.8))
    for y in ys:
        ax.plot(frame[x], frame[y], marker="o", label=y)
    ax.set(xlabel=x, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return figure_png(fig)


def digit_png(image: np.ndarray, scale: int = 2) -> bytes:
    """A ``[28, 28]`` image in [0, 1] as a small grey PNG, white ink on black."""
    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(pixels, mode="L")
    return _image_png(img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST))


def filter_mosaic(
    weights: torch.Tensor, scale: int = 8, columns: int = 8, gap: int = 5
) -> Image.Image:
    """First-layer filters ``[C, 1, k, k]`` as one grid: each filter scaled to its own max
    magnitude, red positive, blue negative, white zero; channel order row by row."""
    w = weights.detach().float().cpu()[:, 0].numpy()
    c, k, _ = w.shape
    rows = -(-c // columns)
    cell = k * scale
    canvas = np.full((rows * (cell + gap), min(c, columns) * (cell + gap), 3), 255, np.uint8)
    for i in range(c):
        f = w[i] / (np.abs(w[i]).max() + 1e-12)
        rgb = np.stack([1 - np.clip(-f, 0, 1), 1 - np.abs(f), 1 - np.clip(f, 0, 1)], -1)
        tile = np.kron((rgb * 255).astype(np.uint8), np.ones((scale, scale, 1), np.uint8))
        r, q = divmod(i, columns)
        y, x = r * (cell + gap), q * (cell + gap)
        canvas[y : y + cell, x : x + cell] = tile
    return Image.fromarray(canvas)


def mosaic_png(weights: torch.Tensor) -> bytes:
    return _image_png(filter_mosaic(weights))


def filter_animation(frames: dict[str, torch.Tensor], ms_per_frame: int = 180) -> bytes:
    """A GIF of first-layer snapshots keyed ``step_NNNNNNN``, each frame labelled with its step."""
    images = []
    for key in sorted(frames):
        mosaic = filter_mosaic(frames[key])
        frame = Image.new("RGB", (mosaic.width, mosaic.height + 14), "white")
        frame.paste(mosaic, (0, 14))
        ImageDraw.Draw(frame).text((2, 1), f"step {int(key.split('_')[-1])}", fill="black")
        images.append(frame.convert("P", palette=Image.Palette.ADAPTIVE))
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0
    )
    return buf.getvalue()


def digits_grid(images: np.ndarray, captions: Sequence[str], columns: int = 8) -> bytes:
    """Digits ``[N, 28, 28]`` with a caption over each (e.g. "true 4 -> 9 (0.98)")."""
    return figure_png(dissect_figures.image_grid(images, captions, columns=columns))


def activation_grid(digit: np.ndarray, maps: np.ndarray, title: str, columns: int = 16) -> bytes:
    """A digit ``[28, 28]`` and the ReLU maps ``[C, H, W]`` it drives in one layer, channel
    ``c`` titled ``c + 1`` (1-based, as everywhere a person reads)."""
    c, band = len(maps), 0.3
    canvas = Canvas(min(columns, max(c, 1)), 0.35 + (1 + -(-c // columns)) * (1 + band), unit=0.6)
    canvas.title(title, fontsize=8)
    top = float(maps.max()) or 1.0
    cells = [(digit, "input", {"cmap": "gray", "vmin": 0, "vmax": 1})] + [
        (maps[i], str(i + 1), {"cmap": "magma", "vmin": 0, "vmax": top}) for i in range(c)
    ]
    for k, (arr, label, style) in enumerate(cells):
        r, q = (0, 0) if k == 0 else (1 + (k - 1) // columns, (k - 1) % columns)
        canvas.tile(arr, label, q, 0.35 + r * (1 + band), band, 6, **style)
    return figure_png(canvas.done())


def maps_table(inputs: np.ndarray, maps: np.ndarray, row_titles: Sequence[str]) -> bytes:
    """One row per input ``[P, 28, 28]``: the input, then the maps ``[P, C, H, W]`` it drives
    in each channel (columns titled 1..C), all maps on one colour scale."""
    p, c = maps.shape[:2]
    left = 0.08 * max((len(t) for t in row_titles), default=0) + 0.15
    canvas = Canvas(left + c + 1, 0.3 + p, unit=0.5)
    top = float(maps.max()) or 1.0
    for j in range(c):
        canvas.text(left + j + 1.5, 0.28, str(j + 1), ha="center", va="bottom", fontsize=5)
    for r in range(p):
        y = 0.3 + r
        canvas.text(left - 0.05, y + 0.5, row_titles[r], ha="right", va="center", fontsize=5)
        canvas.image(inputs[r], left, y, cmap="gray", vmin=0, vmax=1)
        for j in range(c):
            canvas.image(maps[r, j], left + j + 1, y, cmap="magma", vmin=0, vmax=top)
    return figure_png(canvas.done())
