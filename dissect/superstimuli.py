"""Superstimuli: inputs optimised to excite a channel (or a class) as much as possible.

The loop (:func:`render`) is pure: it returns the images; the caller saves. All channels of a
layer (or all classes) are optimised together, one image each, in one batch; a seed makes the
result reproducible. Works natively on 28x28 single-channel images, on CPU or GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dissect.errors import AuditError
from dissect.objectives import Objective, channels_batch, classes_batch, l2, total_variation
from dissect.param import PARAMETRISATIONS, Param
from dissect.specimen import Specimen, specimen_of
from dissect.transforms import Transform, default_transforms

__all__ = [
    "capture",
    "render",
    "Superstimuli",
    "layer_superstimuli",
    "class_superstimuli",
    "plainness_scores",
    "plainness_of_layer",
]


def capture(
    model: nn.Module | Specimen, images: torch.Tensor, needs: set[str]
) -> dict[str, torch.Tensor]:
    """Run the model on pixel images ``[N, C, H, W]`` only as deep as ``needs`` requires and
    return the activations by name (``input``, ``LAYER``, ``LAYER:post``, ``logits``,
    ``log_softmax``; see :class:`~dissect.specimen.Specimen`)."""
    return specimen_of(model).run(images, needs | {"input"})


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
) -> torch.Tensor:
    """Maximise ``objective`` (summed over the batch) for ``n`` images; returns ``[n, C, H, W]``
    in [0, 1] at the model's input shape. Only the images are optimised; the model is left
    unchanged."""
    if param not in PARAMETRISATIONS:
        raise AuditError(f"unknown parametrisation {param!r}: use {', '.join(PARAMETRISATIONS)}")
    specimen = specimen_of(model)
    model = specimen.model
    g = torch.Generator().manual_seed(seed)
    params, to_image = _start(specimen, n, g, param)
    transforms = transforms or default_transforms()
    optimizer = torch.optim.Adam(params, lr=lr)
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            image = transforms(to_image(), g)
            loss = -objective(capture(specimen, image, objective.needs)).sum()
            loss.backward()
            optimizer.step()
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return to_image().detach()


@dataclass(frozen=True)
class Superstimuli:
    """``images [C, C_in, H, W]`` in [0, 1]; ``activation [C]`` the post-activation mean each
    reaches in its own unit (or the class probability); ``used[c]`` is ``"post"`` or ``"pre"``:
    which activation was optimised (``pre`` where the non-linearity gave no gradient at the
    start)."""

    images: torch.Tensor
    activation: torch.Tensor
    used: list[str]
    layer: str


DEFAULT_REGULARISERS = 0.1 * total_variation() + 0.05 * l2()


def _start(specimen: Specimen, n: int, g: torch.Generator, param: str) -> Param:
    return PARAMETRISATIONS[param](n, g, shape=specimen.spec.shape, device=specimen.device)


@torch.no_grad()
def _dead_at_start(
    specimen: Specimen, layer: str, idx: torch.Tensor, seed: int, param: str
) -> torch.Tensor:
    """Which of channels ``idx`` have no positive activation anywhere on their start image."""
    _, to_image = _start(specimen, len(idx), torch.Generator().manual_seed(seed), param)
    post = capture(specimen, to_image(), {f"{layer}:post"})[f"{layer}:post"]
    return (post[torch.arange(len(idx)), idx.to(post.device)].amax((1, 2)) <= 0).cpu()


def _fire_or_rise(layer: str, idx: torch.Tensor) -> Objective:
    """Image ``b`` maximises the post-activation mean of channel ``idx[b]`` where the channel
    fires somewhere (so the non-linearity passes a gradient), else its pre-activation mean."""
    post, pre = channels_batch(f"{layer}:post", idx), channels_batch(layer, idx)
    rows = torch.arange(len(idx))

    def fn(a: dict[str, torch.Tensor]) -> torch.Tensor:
        act = a[f"{layer}:post"]
        fires = act[rows, idx.to(act.device)].amax((1, 2)) > 0
        return torch.where(fires, post(a), pre(a))

    return Objective(fn, {f"{layer}:post", layer}, f"{layer}:batch")


def layer_superstimuli(
    model: nn.Module | Specimen,
    layer: str,
    *,
    steps: int = 256,
    seed: int = 0,
    param: str = "fourier",
    lr: float = 0.05,
    channels: list[int] | None = None,
) -> Superstimuli:
    """One superstimulus per channel of conv ``layer`` (all, or ``channels``, 0-based), optimised
    together. The post-ReLU activation is maximised; while a channel is silent everywhere (no
    gradient through the ReLU) its pre-activation is raised instead. ``used`` says which a
    channel started with."""
    specimen = specimen_of(model)
    width = int(specimen.conv(layer).weight.shape[0])
    chosen = list(range(width)) if channels is None else list(channels)
    bad = [c + 1 for c in chosen if not 0 <= c < width]
    if bad:
        raise AuditError(f"{layer} has channels 1..{width}; got {', '.join(map(str, bad))}")
    idx = torch.tensor(chosen)
    dead = _dead_at_start(specimen, layer, idx, seed, param)
    objective = _fire_or_rise(layer, idx) + DEFAULT_REGULARISERS
    images = render(specimen, objective, len(idx), steps=steps, lr=lr, param=param, seed=seed)
    with torch.no_grad():
        post = f"{layer}:post"
        reached = channels_batch(post, idx)(capture(specimen, images, {post})).cpu()
    return Superstimuli(
        images.cpu(), reached, ["pre" if d else "post" for d in dead.tolist()], layer
    )


def class_superstimuli(
    model: nn.Module | Specimen,
    *,
    steps: int = 256,
    seed: int = 0,
    param: str = "fourier",
    lr: float = 0.05,
) -> Superstimuli:
    """One image per class maximising the study's class objective; ``activation`` is the
    probability the model gives the image's own class."""
    specimen = specimen_of(model)
    k = specimen.num_classes
    classes = torch.arange(k)
    images = render(
        specimen,
        classes_batch(classes) + DEFAULT_REGULARISERS,
        k,
        steps=steps,
        lr=lr,
        param=param,
        seed=seed,
    )
    with torch.no_grad():
        probs = capture(specimen, images, {"log_softmax"})["log_softmax"].exp().cpu()
    return Superstimuli(images.cpu(), probs[classes, classes], ["logits"] * k, "classes")


def plainness_scores(images: torch.Tensor) -> torch.Tensor:
    """How little structure each image ``[N, C, H, W]`` has (its channels averaged), in [0, 1]
    (1 = plain).

    Structure needs contrast (the image's standard deviation, against 0.25 for a crisp stroke)
    and energy outside the lowest frequencies (share of the mean-free image's power beyond 2
    cycles per image); plainness is ``1 - sqrt(contrast * detail)``.
    """
    x = images.detach().double().mean(1)
    contrast = (x.std((1, 2)) / 0.25).clamp(max=1.0)
    centred = x - x.mean((1, 2), keepdim=True)
    power = torch.fft.fft2(centred).abs() ** 2
    h, w = x.shape[1:]
    fy, fx = torch.fft.fftfreq(h) * h, torch.fft.fftfreq(w) * w
    low = (fy.abs()[:, None] <= 2) & (fx.abs()[None, :] <= 2)
    total = power.sum((1, 2)).clamp(min=1e-20)
    detail = (power * ~low).sum((1, 2)) / total
    return (1 - torch.sqrt(contrast * detail)).float()


def plainness_of_layer(
    model: nn.Module | Specimen, layer: str, *, steps: int = 128, seed: int = 0
) -> torch.Tensor:
    """Plainness ``[C]`` of the superstimulus of every channel of ``layer``."""
    return plainness_scores(layer_superstimuli(model, layer, steps=steps, seed=seed).images)
