"""Input images for the command line: a test-set index or a PNG file, converted the way MNIST
digits are (grey, 28x28, white digit on black, in [0, 1])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dissect.errors import AuditError

__all__ = ["load_png", "select_image"]


def load_png(path: str | Path) -> tuple[torch.Tensor, list[str]]:
    """``([1, 1, 28, 28] in [0, 1], notes)``: notes say each conversion that was made."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (FileNotFoundError, IsADirectoryError):
        raise AuditError(
            f"image file {str(path)!r} does not exist: give a PNG path or a test-set index"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise AuditError(
            f"{str(path)!r} is not a readable image ({exc}): give a PNG file"
        ) from None
    notes = []
    if img.mode not in ("L", "1"):
        notes.append(f"converted from {img.mode} to grey")
        img = img.convert("L")
    if img.size != (28, 28):
        notes.append(f"resized from {img.size[0]}x{img.size[1]} to 28x28")
        img = img.resize((28, 28), Image.Resampling.LANCZOS)
    a = np.asarray(img, dtype=np.float32) / 255.0
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if border.mean() > 0.5:
        notes.append("inverted to white on black")
        a = 1.0 - a
    return torch.from_numpy(a.copy())[None, None], notes


def select_image(
    spec: str, images: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, int | None, list[str]]:
    """``--image`` as a 0-based test-set index or a PNG path: ``(image, true label or None, notes)``."""
    if spec.isdigit() or (spec.startswith("-") and spec[1:].isdigit()):
        i = int(spec)
        if not 0 <= i < len(images):
            raise AuditError(
                f"image index {i} is out of range: the test set has images 0..{len(images) - 1}"
            )
        return images[i : i + 1], int(labels[i]), []
    image, notes = load_png(spec)
    return image, None, notes
