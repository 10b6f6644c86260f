"""Figures (matplotlib, Agg): pure builders that return a Figure; the caller saves it."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["Canvas", "image_grid", "image_grid_png", "signed_grid"]


class Canvas:
    """A figure laid out in cell units on one axes that covers it, y running down: each image
    is one AxesImage and each label one Text. A grid of subplots costs a full Axes (ticks,
    spines, layout) per cell, seconds for a hundred cells; this costs a fraction of one.
    ``unit`` is inches per cell unit."""

    def __init__(self, width: float, height: float, unit: float) -> None:
        self.width, self.height = width, height
        self.fig = plt.figure(figsize=(width * unit, height * unit))
        self.ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0))
        self.ax.axis("off")

    def image(
        self, arr: np.ndarray, x: float, y: float, size: float = 1.0, pad: float = 0.06, **style
    ) -> None:
        """``arr`` centred in the square cell of side ``size`` whose top-left corner is
        ``(x, y)``, keeping its aspect."""
        h, w = arr.shape[:2]
        scale = (size - 2 * pad) / max(h, w)
        x0, y0 = x + (size - w * scale) / 2, y + (size - h * scale) / 2
        extent = (x0, x0 + w * scale, y0 + h * scale, y0)
        self.ax.imshow(arr, extent=extent, aspect="auto", interpolation="nearest", **style)

    def text(self, x: float, y: float, s: str, **style) -> None:
        self.ax.text(x, y, s, **style)

    def tile(
        self, arr: np.ndarray, title: str, x: float, y: float, band: float, fontsize: float, **style
    ) -> None:
        """``title`` in a band of height ``band`` from ``(x, y)`` down, ``arr`` in the unit cell
        under it."""
        self.text(x + 0.5, y + band - 0.02, title, ha="center", va="bottom", fontsize=fontsize)
        self.image(arr, x, y + band, **style)

    def title(self, s: str, y: float = 0.2, fontsize: float = 9) -> None:
        self.text(self.width / 2, y, s, ha="center", va="center", fontsize=fontsize)

    def done(self) -> Figure:
        self.ax.set_xlim(0, self.width)
        self.ax.set_ylim(self.height, 0)
        return self.fig


def _tiles(
    arrays: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str],
    suptitle: str,
    columns: int,
    style: Callable[[np.ndarray], dict],
    unit: float = 1.5,
    fontsize: float = 7,
) -> Figure:
    """Arrays in a grid, row by row, each under its title (wrapped to the cell)."""
    n = len(arrays)
    cols = min(columns, max(1, n))
    rows = max(1, math.ceil(n / cols))
    top, band = (0.35 if suptitle else 0.05), 0.3
    canvas = Canvas(cols, top + rows * (1 + band), unit)
    if suptitle:
        canvas.title(suptitle)
    for i, (arr, title) in enumerate(zip(arrays, titles, strict=False)):
        r, q = divmod(i, cols)
        canvas.tile(arr, textwrap.fill(title, 24), q, top + r * (1 + band), band, fontsize,
                    **style(arr))  # fmt: skip
    return canvas.done()


def image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    suptitle: str = "",
    columns: int = 8,
    cmap: str = "gray",
) -> Figure:
    """``images [N, H, W]`` in [0, 1] in a grid, one title each."""
    return _tiles(images, titles, suptitle, columns, lambda _: {"cmap": cmap, "vmin": 0, "vmax": 1})


def image_grid_png(images: torch.Tensor, columns: int = 16, scale: int = 2, gap: int = 3) -> bytes:
    """Images ``[N, 1, H, W]`` (e.g. one superstimulus per channel) as one grey PNG without
    titles: each stretched to its own range, laid out row by row in channel order on white,
    ``gap`` pixels apart, then enlarged ``scale`` times. :func:`image_grid` is the titled
    figure of the same images."""
    from PIL import Image

    x = images.detach().float().cpu()[:, 0]
    lo = x.flatten(1).min(1).values[:, None, None]
    hi = x.flatten(1).max(1).values[:, None, None]
    pixels = ((x - lo) / (hi - lo + 1e-12) * 255).to(torch.uint8).numpy()
    n, h, w = pixels.shape
    rows, cols = -(-n // columns), min(n, columns)
    canvas = np.full((rows * (h + gap), cols * (w + gap)), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, columns)
        canvas[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = pixels[i]
    img = Image.fromarray(canvas, mode="L")
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _signed(arr: np.ndarray, scale: float | None = None) -> dict:
    m = scale if scale is not None else float(np.abs(arr).max()) or 1.0
    return {"cmap": "RdBu_r", "vmin": -m, "vmax": m}


def signed_grid(
    arrays: np.ndarray, titles: Sequence[str], suptitle: str = "", columns: int = 8
) -> Figure:
    """Signed arrays ``[N, H, W]`` (weights, contributions) on a red-blue scale centred on 0,
    each normalised to its own largest magnitude."""
    return _tiles(arrays, titles, suptitle, columns, _signed)


def dissection_figure(
    x: np.ndarray,
    w: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    bias: float,
    descriptions: Sequence[str],
    title: str = "",
) -> Figure:
    """The study's seven columns for one outer channel on one image: x_j, description of x_j,
    j (1-based), w_j, a_j, c_j (running sum), y; the bias in the last row. ``x [C_in, H, W]``,
    ``w [C_in, k, k]``, ``a [C_in, H', W']``, ``y [H', W']``. Each column has one colour scale."""  # fmt: skip
    n = len(x)
    c = np.cumsum(a, axis=0)
    scales = {
        k: float(np.abs(v).max()) or 1.0
        for k, v in {"x": x, "w": w, "a": a, "c": c, "y": y}.items()
    }
    widths = [1.0, 2.2, 0.5, 1.0, 1.0, 1.0, 1.0]
    left = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
    top = 0.75 if title else 0.35
    canvas = Canvas(sum(widths), top + n + 1.05, unit=1.05)
    if title:
        canvas.title(title, y=0.22)
    heads = ["x_j", "description of x_j", "j", "w_j", "a_j", "c_j", "y"]
    for col, head in enumerate(heads):
        canvas.text(left[col] + widths[col] / 2, top - 0.08, head, ha="center", va="bottom",
                    fontsize=8)  # fmt: skip

    def show(arr: np.ndarray, col: int, row: int, key: str) -> None:
        canvas.image(arr, left[col], top + row, **_signed(arr, scales[key]))

    def label(s: str, col: int, row: int, **style) -> None:
        canvas.text(left[col] + 0.05, top + row + 0.5, s, va="center", **style)

    for j in range(n):
        show(x[j], 0, j, "x")
        label(textwrap.fill(descriptions[j], 34), 1, j, fontsize=7)
        canvas.text(left[2] + widths[2] / 2, top + j + 0.5, str(j + 1), ha="center",
                    va="center", fontsize=8)  # fmt: skip
        show(w[j], 3, j, "w")
        show(a[j], 4, j, "a")
        show(c[j], 5, j, "c")
    label(f"bias {bias:+.3f}", 1, n, fontsize=7)
    show(c[-1] + bias, 5, n, "c")
    show(y, 6, n, "y")
    return canvas.done()


def first_layer_filters(weight: np.ndarray, labels: Sequence[str]) -> Figure:
    """All first-layer filters ``[C, 1, k, k]`` with their descriptions (1-based)."""
    return signed_grid(
        weight[:, 0], [f"{c + 1}: {t}" for c, t in enumerate(labels)], "first-layer filters"
    )


__all__ += ["dissection_figure", "first_layer_filters"]
