"""Training-time data handling: the random affine augmentation :func:`augment`.

The data sets themselves (``mnist-5k``, ``mnist``, ``fashion-mnist``, :data:`DATASETS`,
:func:`load_split`) are loaded by :mod:`dissect.infra.datasets`, which every package of the
suite shares.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["augment"]


def augment(
    images: torch.Tensor,
    indices: torch.Tensor,
    seed: int,
    epoch: int,
    n_total: int,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: float = 0.1,
) -> torch.Tensor:
    """A small random affine (rotation, shift, scale) per sample. ``images: [B, 1, 28, 28]``.

    The parameters of sample ``i`` are drawn from ``(seed, epoch)`` for all ``n_total`` samples
    at once and indexed by ``i``, so the image a sample becomes does not depend on which batch
    or which process handles it.
    """
    rng = np.random.default_rng([seed, epoch, 0xA1F])
    table = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(n_total, 4)).astype(np.float32))
    p = table[indices.cpu()].to(images.device)
    angle = p[:, 0] * np.deg2rad(degrees)
    s = 1.0 + p[:, 1] * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [
            torch.stack([cos, -sin, p[:, 2] * translate * 2], dim=1),
            torch.stack([sin, cos, p[:, 3] * translate * 2], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
