"""Robustness transforms applied to the image at every optimisation step: small factories
``f(images, generator) -> images`` joined by :func:`compose`. Random amounts come from the
given generator, so a seeded run is reproducible."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Transform", "jitter", "scale", "rotate", "compose", "default_transforms"]

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, device=generator.device))


def jitter(pixels: int = 2) -> Transform:
    """Shift the whole batch by up to ``pixels`` in x and y (zero fill)."""

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        dy, dx = (
            int(torch.randint(-pixels, pixels + 1, (), generator=g, device=g.device))
            for _ in range(2)
        )
        padded = F.pad(x, (pixels, pixels, pixels, pixels))
        h, w = x.shape[-2:]
        return padded[..., pixels + dy : pixels + dy + h, pixels + dx : pixels + dx + w]

    return apply


def _affine(x: torch.Tensor, angle: float, factor: float) -> torch.Tensor:
    cos, sin = math.cos(angle) / factor, math.sin(angle) / factor
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def scale(low: float = 0.9, high: float = 1.1) -> Transform:
    """Zoom the batch by a random factor in ``[low, high]``."""
    return lambda x, g: _affine(x, 0.0, _uniform(g, low, high))


def rotate(degrees: float = 10.0) -> Transform:
    """Rotate the batch by a random angle in ``[-degrees, degrees]``."""
    return lambda x, g: _affine(x, math.radians(_uniform(g, -degrees, degrees)), 1.0)


def compose(transforms: Sequence[Transform]) -> Transform:
    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for t in transforms:
            x = t(x, g)
        return x

    return apply


def default_transforms() -> Transform:
    """Jitter by 2 px, scale 0.9-1.1, rotate +-10 degrees: what makes superstimuli robust
    patterns rather than adversarial noise, at 28x28."""
    return compose([jitter(2), scale(0.9, 1.1), rotate(10.0)])
