"""Input images for the command line: a test-set index or an image file, converted to the
model's input (grey or colour, its size, in [0, 1]; a grey image with a light background is
inverted to white on black, the way MNIST digits are)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dissect.infra.errors import AuditError

__all__ = ["load_png", "select_image"]


def load_png(
    path: str | Path, shape: tuple[int, int, int] = (1, 28, 28)
) -> tuple[torch.Tensor, list[str]]:
    """``([1, C, H, W] in [0, 1], notes)`` for the input ``shape`` (C is 1 or 3); notes say
    each conversion that was made."""
    from PIL import Image, UnidentifiedImageError

    try:
        img: Image.Image = Image.open(path)
        img.load()
    except (FileNotFoundError, IsADirectoryError):
        raise AuditError(
            f"image file {str(path)!r} does not exist: give a PNG path or a test-set index"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise AuditError(
            f"{str(path)!r} is not a readable image ({exc}): give a PNG file"
        ) from None
    channels, h, w = shape
    if channels not in (1, 3):
        raise AuditError(f"image files can feed models of 1 or 3 input channels, not {channels}")
    notes = []
    mode = "L" if channels == 1 else "RGB"
    if img.mode != mode and not (mode == "L" and img.mode == "1"):
        notes.append(f"converted from {img.mode} to {'grey' if mode == 'L' else 'RGB'}")
    img = img.convert(mode)
    if img.size != (w, h):
        notes.append(f"resized from {img.size[0]}x{img.size[1]} to {w}x{h}")
        img = img.resize((w, h), Image.Resampling.LANCZOS)
    a = np.asarray(img, dtype=np.float32).reshape(h, w, channels).transpose(2, 0, 1) / 255.0
    if channels == 1:
        border = np.concatenate([a[0, 0], a[0, -1], a[0, :, 0], a[0, :, -1]])
        if border.mean() > 0.5:
            notes.append("inverted to white on black")
            a = 1.0 - a
    return torch.from_numpy(a.copy())[None], notes


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
    image, notes = load_png(spec, tuple(images.shape[1:]))  # type: ignore[arg-type]
    return image, None, notes
