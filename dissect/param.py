"""Parametrisations of images for optimisation, at the model's own input shape (28x28 single
channel by default).

Each factory returns ``(parameters, to_image)``: the tensors to optimise and a function that
turns them into images ``[N, C, H, W]`` in the valid pixel range [0, 1] (a sigmoid keeps
them there). The model's own input normalisation is applied later, by the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["Param", "pixels", "fourier", "PARAMETRISATIONS"]

Param = tuple[list[torch.Tensor], Callable[[], torch.Tensor]]


def pixels(
    n: int,
    generator: torch.Generator,
    shape: tuple[int, int, int] = (1, 28, 28),
    init_std: float = 0.1,
    device: str | torch.device = "cpu",
) -> Param:
    """Plain pixels: one logit per pixel, image = sigmoid(logit - 2) (dark start, like MNIST)."""
    logits = (torch.randn(n, *shape, generator=generator) * init_std).to(device).requires_grad_()
    return [logits], lambda: torch.sigmoid(logits - 2.0)


def fourier(
    n: int,
    generator: torch.Generator,
    shape: tuple[int, int, int] = (1, 28, 28),
    decay: float = 1.0,
    init_std: float = 0.01,
    device: str | torch.device = "cpu",
) -> Param:
    """Frequency space: a real spectrum scaled by ``1 / f**decay``, so optimisation favours
    smooth structure over pixel noise; image = sigmoid(irfft2(spectrum) - 2)."""
    c, h, w = shape
    size = max(h, w)
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    scale = 1.0 / torch.clamp(torch.sqrt(fx**2 + fy**2), min=1.0 / size) ** decay
    scale = (scale / scale.max() * size).to(device)
    spectrum = torch.randn(n, c, h, w // 2 + 1, 2, generator=generator) * init_std
    spectrum = spectrum.to(device).requires_grad_()

    def to_image() -> torch.Tensor:
        spatial = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(h, w), norm="ortho")
        return torch.sigmoid(spatial - 2.0)

    return [spectrum], to_image


PARAMETRISATIONS: dict[str, Callable[..., Param]] = {"pixels": pixels, "fourier": fourier}
