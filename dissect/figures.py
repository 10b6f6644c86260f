"""Figures (matplotlib, Agg): pure builders that return a Figure; the caller saves it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["image_grid", "signed_grid"]


def _grid(n: int, columns: int) -> tuple[Figure, np.ndarray]:
    cols = min(columns, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.7 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def _finish(fig: Figure, suptitle: str) -> Figure:
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    suptitle: str = "",
    columns: int = 8,
    cmap: str = "gray",
) -> Figure:
    """``images [N, H, W]`` in [0, 1] in a grid, one title each."""
    fig, axes = _grid(len(images), columns)
    for ax, img, title in zip(axes.flat, images, titles, strict=False):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    return _finish(fig, suptitle)


def signed_grid(
    arrays: np.ndarray, titles: Sequence[str], suptitle: str = "", columns: int = 8
) -> Figure:
    """Signed arrays ``[N, H, W]`` (weights, contributions) on a red-blue scale centred on 0,
    each normalised to its own largest magnitude."""
    fig, axes = _grid(len(arrays), columns)
    for ax, arr, title in zip(axes.flat, arrays, titles, strict=False):
        m = float(np.abs(arr).max()) or 1.0
        ax.imshow(arr, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    return _finish(fig, suptitle)


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
    fig, axes = plt.subplots(n + 1, 7, figsize=(9, 1.05 * (n + 1) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 2.2, 0.5, 1, 1, 1, 1]})  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    heads = ["x_j", "description of x_j", "j", "w_j", "a_j", "c_j", "y"]
    for col, head in enumerate(heads):
        axes[0, col].set_title(head, fontsize=8)

    def show(ax, arr, key):
        ax.imshow(arr, cmap="RdBu_r", vmin=-scales[key], vmax=scales[key], interpolation="nearest")

    for j in range(n):
        show(axes[j, 0], x[j], "x")
        axes[j, 1].text(0, 0.5, descriptions[j], fontsize=7, va="center", wrap=True)
        axes[j, 2].text(0.5, 0.5, str(j + 1), fontsize=8, ha="center", va="center")
        show(axes[j, 3], w[j], "w")
        show(axes[j, 4], a[j], "a")
        show(axes[j, 5], c[j], "c")
    axes[n, 1].text(0, 0.5, f"bias {bias:+.3f}", fontsize=7, va="center")
    show(axes[n, 5], c[-1] + bias, "c")
    show(axes[n, 6], y, "y")
    return _finish(fig, title)


def first_layer_filters(weight: np.ndarray, labels: Sequence[str]) -> Figure:
    """All first-layer filters ``[C, 1, k, k]`` with their descriptions (1-based)."""
    return signed_grid(
        weight[:, 0], [f"{c + 1}: {t}" for c, t in enumerate(labels)], "first-layer filters"
    )


__all__ += ["dissection_figure", "first_layer_filters"]
