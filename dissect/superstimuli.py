"""Superstimuli: inputs optimised to excite a channel (or a class) as much as possible.

The loop (:func:`render`) is pure: it returns the images; the caller saves. All channels of a
layer (or all classes) are optimised together, one image each, in one batch; a seed makes the
result reproducible. Works natively on 28x28 single-channel images, on CPU or GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dissect.infra.errors import AuditError
from dissect.objectives import Objective, channels_batch, classes_batch, l2, total_variation
from dissect.param import PARAMETRISATIONS, Param, encode
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
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Maximise ``objective`` (summed over the batch) for ``n`` images; returns ``[n, C, H, W]``
    in [0, 1] at the model's input shape. ``start = (rows, images)``: those rows begin from the
    given images instead of the seeded random start. Only the images are optimised; the model
    is left unchanged."""
    if param not in PARAMETRISATIONS:
        raise AuditError(f"unknown parametrisation {param!r}: use {', '.join(PARAMETRISATIONS)}")
    specimen = specimen_of(model)
    model = specimen.model
    g = torch.Generator().manual_seed(seed)
    params, to_image = _start(specimen, n, g, param)
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
    reaches in its own unit (or the class probability); ``used[c]`` says how channel ``c``
    started: ``"post"`` (its activation from a random start), ``"pre"`` (silent on the random
    start: its pre-activation raised until it fires), ``"digit"`` (silent on the random start:
    started from the data image that excites it most)."""

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
    rows = torch.arange(len(idx), device=post.device)
    return (post[rows, idx.to(post.device)].amax((1, 2)) <= 0).cpu()


def _fire_or_rise(layer: str, idx: torch.Tensor, scale: torch.Tensor | None = None) -> Objective:
    """Image ``b`` maximises the post-activation mean of channel ``idx[b]`` where the channel
    fires somewhere (so the non-linearity passes a gradient), else its pre-activation mean;
    divided by ``scale[b]`` (the channel's usual activation, where known), so that the
    regularisers weigh the same against a weak channel as against a strong one."""
    post, pre = channels_batch(f"{layer}:post", idx), channels_batch(layer, idx)

    def fn(a: dict[str, torch.Tensor]) -> torch.Tensor:
        act = a[f"{layer}:post"]
        rows = torch.arange(len(idx), device=act.device)
        fires = act[rows, idx.to(act.device)].amax((1, 2)) > 0
        value = torch.where(fires, post(a), pre(a))
        return value if scale is None else value / scale.to(value.device)

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
    data: torch.Tensor | None = None,
) -> Superstimuli:
    """One superstimulus per channel of conv ``layer`` (all, or ``channels``, 0-based), optimised
    together. The post-activation mean is maximised; while a channel is silent everywhere (no
    gradient through its non-linearity) its pre-activation is raised instead. With ``data``
    (pixel images), a channel silent on its random start begins from the image of ``data`` that
    excites it most. ``used`` says how each channel started."""
    specimen = specimen_of(model)
    width = int(specimen.conv(layer).weight.shape[0])
    chosen = list(range(width)) if channels is None else list(channels)
    bad = [c + 1 for c in chosen if not 0 <= c < width]
    if bad:
        raise AuditError(f"{layer} has channels 1..{width}; got {', '.join(map(str, bad))}")
    # bookkeeping on the CPU, beside the .cpu() results it indexes; moved where it meets the model
    idx = torch.tensor(chosen, device="cpu")
    dead = _dead_at_start(specimen, layer, idx, seed, param)
    used = ["pre" if d else "post" for d in dead.tolist()]
    start, scale = None, torch.ones(len(idx), device="cpu")
    if data is not None:
        best, which = _best_in_data(specimen, layer, idx, data)
        rows = torch.nonzero(dead & (best > 0)).flatten()
        start = (rows, data[which[rows]]) if len(rows) else None
        for row in rows.tolist():
            used[row] = "digit"
        scale = torch.where(best > 0, best, 1.0)
    objective = _fire_or_rise(layer, idx, scale) + DEFAULT_REGULARISERS
    images = render(specimen, objective, len(idx), steps=steps, lr=lr, param=param, seed=seed,
                    start=start)  # fmt: skip
    post = channels_batch(f"{layer}:post", idx)
    with torch.no_grad():
        reached = post(capture(specimen, images, {f"{layer}:post"})).cpu()
        if start is not None:  # keep a weak channel's digit where the optimiser lost it
            rows, digits = start[0], start[1].to(images.device)
            at_start = post(capture(specimen, images.index_copy(0, rows.to(images.device), digits), {f"{layer}:post"})).cpu()  # fmt: skip
            keep = at_start[rows] > reached[rows]
            images[rows[keep].to(images.device)] = digits[keep.to(digits.device)]
            reached[rows[keep]] = at_start[rows[keep]]
    return Superstimuli(images.cpu(), reached, used, layer)


@torch.no_grad()
def _best_in_data(
    specimen: Specimen, layer: str, idx: torch.Tensor, data: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(best [C], which [C])``: each channel's highest post-activation mean over ``data`` and
    the index of the image that reaches it."""
    post = f"{layer}:post"
    means = torch.cat([
        capture(specimen, data[s : s + 500], {post})[post][:, idx].mean((2, 3)).cpu()
        for s in range(0, len(data), 500)
    ])  # fmt: skip
    return means.max(0)


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
    classes = torch.arange(k, device="cpu")  # indexes the .cpu() probabilities below
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
    fy = torch.fft.fftfreq(h, device=x.device) * h
    fx = torch.fft.fftfreq(w, device=x.device) * w
    low = (fy.abs()[:, None] <= 2) & (fx.abs()[None, :] <= 2)
    total = power.sum((1, 2)).clamp(min=1e-20)
    detail = (power * ~low).sum((1, 2)) / total
    return (1 - torch.sqrt(contrast * detail)).float()


def plainness_of_layer(
    model: nn.Module | Specimen, layer: str, *, steps: int = 128, seed: int = 0
) -> torch.Tensor:
    """Plainness ``[C]`` of the superstimulus of every channel of ``layer``."""
    return plainness_scores(layer_superstimuli(model, layer, steps=steps, seed=seed).images)
