"""Parametrisations of images for optimisation, at the model's own input shape (28x28 single
channel by default).

Each factory returns ``(parameters, to_image)``: the tensors to optimise and a function that
turns them into images ``[N, C, H, W]`` in the valid pixel range [0, 1] (a sigmoid keeps
them there). The model's own input normalisation is applied later, by the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["Param", "pixels", "fourier", "encode", "PARAMETRISATIONS"]

Param = tuple[list[torch.Tensor], Callable[[], torch.Tensor]]


def pixels(
    n: int,
    generator: torch.Generator,
    shape: tuple[int, int, int] = (1, 28, 28),
    init_std: float = 0.1,
    device: str | torch.device = "cpu",
) -> Param:
    """Plain pixels: one logit per pixel, image = sigmoid(logit - 2) (dark start, like MNIST)."""
    # drawn where the generator is (the CPU), so a seed gives the same start on every device
    start = torch.randn(n, *shape, generator=generator, device=generator.device)
    logits = (start * init_std).to(device).requires_grad_()
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
    scale = _fourier_scale(shape, decay).to(device)
    spectrum = torch.randn(n, c, h, w // 2 + 1, 2, generator=generator, device=generator.device)
    spectrum = spectrum * init_std
    spectrum = spectrum.to(device).requires_grad_()

    def to_image() -> torch.Tensor:
        spatial = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(h, w), norm="ortho")
        return torch.sigmoid(spatial - 2.0)

    return [spectrum], to_image


def _fourier_scale(shape: tuple[int, int, int], decay: float = 1.0) -> torch.Tensor:
    _, h, w = shape
    size = max(h, w)
    # on the CPU, so the scale is the same on every device; the callers move it
    fy = torch.fft.fftfreq(h, device="cpu")[:, None]
    fx = torch.fft.rfftfreq(w, device="cpu")[None, :]
    scale = 1.0 / torch.clamp(torch.sqrt(fx**2 + fy**2), min=1.0 / size) ** decay
    return scale / scale.max() * size


def encode(param: str, images: torch.Tensor) -> torch.Tensor:
    """The parameter rows that make ``images [n, C, H, W]`` (pixels, clamped to [0.02, 0.98] so
    the sigmoid can reach them): the inverse of ``to_image``, to start from given images."""
    logit = torch.logit(images.clamp(0.02, 0.98)) + 2.0
    if param == "pixels":
        return logit
    scale = _fourier_scale(tuple(images.shape[1:])).to(images.device)  # type: ignore[arg-type]
    return torch.view_as_real(torch.fft.rfft2(logit, norm="ortho") / scale)


PARAMETRISATIONS: dict[str, Callable[..., Param]] = {"pixels": pixels, "fourier": fourier}
