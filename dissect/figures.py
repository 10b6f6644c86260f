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


def image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    suptitle: str = "",
    columns: int = 8,
    cmap: str = "gray",
) -> Figure:
    """``images [N, H, W]`` in [0, 1] in a grid, one title each."""
    n = len(images)
    cols = min(columns, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.7 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles, strict=False):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def signed_grid(
    arrays: np.ndarray, titles: Sequence[str], suptitle: str = "", columns: int = 8
) -> Figure:
    """Signed arrays ``[N, H, W]`` (weights, contributions) on a red-blue scale centred on 0,
    each normalised to its own largest magnitude."""
    n = len(arrays)
    cols = min(columns, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.7 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, arr, title in zip(axes.flat, arrays, titles, strict=False):
        m = float(np.abs(arr).max()) or 1.0
        ax.imshow(arr, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig
