"""The optimisation loop of superstimuli, kept pure: it returns the images; the caller saves.

:func:`render` maximises an :class:`~dissect.objectives.Objective` over a batch of images
parametrised by :mod:`dissect.param`, under the robustness transforms of
:mod:`dissect.transforms`, with ReLU gradients redirected (:mod:`dissect.redirect`) wherever
an image's true gradient is dead, so that a network silent on the start image can still be
woken. Only the images are optimised; the model is left unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from dissect.infra.errors import AuditError
from dissect.objectives import Objective
from dissect.param import PARAMETRISATIONS, Param, encode
from dissect.redirect import RedirectedRelu
from dissect.specimen import Specimen, specimen_of
from dissect.transforms import Transform, default_transforms

__all__ = ["capture", "render", "render_noting_fallbacks", "start_images"]


def capture(
    model: nn.Module | Specimen, images: torch.Tensor, needs: set[str]
) -> dict[str, torch.Tensor]:
    """Run the model on pixel images ``[N, C, H, W]`` only as deep as ``needs`` requires and
    return the activations by name (``input``, ``LAYER``, ``LAYER:post``, ``logits``,
    ``log_softmax``; see :class:`~dissect.specimen.Specimen`)."""
    return specimen_of(model).run(images, needs | {"input"})


def start_images(specimen: Specimen, n: int, g: torch.Generator, param: str) -> Param:
    """The seeded random start of ``n`` images in parametrisation ``param``."""
    if param not in PARAMETRISATIONS:
        raise AuditError(f"unknown parametrisation {param!r}: use {', '.join(PARAMETRISATIONS)}")
    return PARAMETRISATIONS[param](n, g, shape=specimen.spec.shape, device=specimen.device)


def render(
    model: nn.Module | Specimen,
    objective: Objective,
    n: int,
    *,
    steps: int = 256,
    lr: float = 0.05,
    param: str = "fourier",
    transforms: Transform | None = None,
    seed: int = 0,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Maximise ``objective`` (summed over the batch) for ``n`` images; returns ``[n, C, H, W]``
    in [0, 1] at the model's input shape. ``start = (rows, images)``: those rows begin from the
    given images instead of the seeded random start."""
    return render_noting_fallbacks(model, objective, n, steps=steps, lr=lr, param=param,
                                   transforms=transforms, seed=seed, start=start)[0]  # fmt: skip


def render_noting_fallbacks(
    model: nn.Module | Specimen,
    objective: Objective,
    n: int,
    *,
    steps: int = 256,
    lr: float = 0.05,
    param: str = "fourier",
    transforms: Transform | None = None,
    seed: int = 0,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`render`, and ``redirected [n]`` (bool, CPU): which images needed a redirected
    ReLU gradient at some step (their true gradient was dead there)."""
    specimen = specimen_of(model)
    model = specimen.model
    g = torch.Generator().manual_seed(seed)
    params, to_image = start_images(specimen, n, g, param)
    if start is not None:
        with torch.no_grad():
            rows, given = start
            params[0][rows.to(params[0].device)] = encode(param, given.to(params[0].device))
    transforms = transforms or default_transforms()
    optimizer = torch.optim.Adam(params, lr=lr)
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    redirect = RedirectedRelu()
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            image = transforms(to_image(), g)
            with redirect:
                loss = -objective(capture(specimen, image, objective.needs)).sum()
            loss.backward()
            optimizer.step()
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    fell_back = redirect.fell_back
    redirected = torch.zeros(n, dtype=torch.bool, device="cpu") if fell_back is None else fell_back
    return to_image().detach(), redirected
