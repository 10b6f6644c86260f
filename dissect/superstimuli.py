"""Superstimuli: inputs optimised to excite a channel (or a class) as much as possible.

The loop (:func:`~dissect.render.render`) is pure: it returns the images; the caller saves. All
channels of a layer (or all classes) are optimised together, one image each, in one batch; a
seed makes the result reproducible. Works natively on 28x28 single-channel images, on CPU or
GPU. Every superstimulus states the activation it reaches and how it got there (``used``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dissect.infra.errors import AuditError
from dissect.objectives import Objective, channels_batch, classes_confidence, l2, total_variation
from dissect.param import Param
from dissect.render import capture, render, render_noting_fallbacks, start_images
from dissect.specimen import Specimen, specimen_of

__all__ = [
    "capture",
    "render",
    "Superstimuli",
    "layer_superstimuli",
    "class_superstimuli",
    "class_means",
    "mean_correlations",
    "closest_to_own",
    "best_in_data",
    "plainness_scores",
    "plainness_of_layer",
]


@dataclass(frozen=True)
class Superstimuli:
    """``images [C, C_in, H, W]`` in [0, 1]; ``activation [C]`` the post-activation mean each
    reaches in its own unit (or the class probability); ``used[c]`` says how unit ``c`` was
    optimised. Channels: ``"post"`` (its activation from a random start), ``"pre"`` (silent on
    the random start: its pre-activation raised until it fires), ``"digit"`` (silent on the
    random start, or left by it below the data image that excites it most: started from that
    image; where the optimiser cannot raise it, the image itself). Classes: ``"random"``
    (from the seeded random start), ``"mean-digit"`` (from the mean of the data, the same start
    for every class), ``"class-mean"`` (fallback: from its own class's mean digit, where the
    shared start did not give a sure, class-like image). ``"+redirected"`` is added where a
    silent ReLU passed no gradient and the redirected one was used (:mod:`dissect.redirect`)."""

    images: torch.Tensor
    activation: torch.Tensor
    used: list[str]
    layer: str


DEFAULT_REGULARISERS = 0.1 * total_variation() + 0.05 * l2()


def _start(specimen: Specimen, n: int, g: torch.Generator, param: str) -> Param:
    return start_images(specimen, n, g, param)


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
    excites it most, and one that ends below that image is optimised again from it (keeping the
    better, or the image itself): no superstimulus is weaker than the best of ``data``. ``used``
    says how each channel started."""
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
        best, which = best_in_data(specimen, layer, idx, data)
        rows = torch.nonzero(dead & (best > 0)).flatten()
        start = (rows, data[which[rows]]) if len(rows) else None
        for row in rows.tolist():
            used[row] = "digit"
        scale = torch.where(best > 0, best, 1.0)
    objective = _fire_or_rise(layer, idx, scale) + DEFAULT_REGULARISERS
    images, redirected = render_noting_fallbacks(specimen, objective, len(idx), steps=steps,
                                                 lr=lr, param=param, seed=seed, start=start)  # fmt: skip
    post = channels_batch(f"{layer}:post", idx)
    with torch.no_grad():
        reached = post(capture(specimen, images, {f"{layer}:post"})).cpu()
    if data is not None:
        # a channel the optimiser left below the data image that excites it most (a weak
        # channel from its digit, or one whose random start led it astray) is optimised again
        # from that image, and keeps the better of the two, or the image itself
        rows = torch.nonzero((reached < best) & (best > 0)).flatten()
        if len(rows):
            digits = data[which[rows]].to(images.device)
            objective = _fire_or_rise(layer, idx[rows], scale[rows]) + DEFAULT_REGULARISERS
            from_digit, again_redirected = render_noting_fallbacks(
                specimen, objective, len(rows), steps=steps, lr=lr, param=param, seed=seed,
                start=(torch.arange(len(rows), device="cpu"), digits),
            )  # fmt: skip
            sub = channels_batch(f"{layer}:post", idx[rows])
            with torch.no_grad():
                reached_again, at_digit = (
                    sub(capture(specimen, x, {f"{layer}:post"})).cpu() for x in (from_digit, digits)
                )  # fmt: skip
            for i, row in enumerate(rows.tolist()):
                if max(reached_again[i], at_digit[i]) <= reached[row]:
                    continue
                optimised = bool(reached_again[i] >= at_digit[i])
                images[row] = from_digit[i] if optimised else digits[i]
                reached[row] = max(reached_again[i], at_digit[i])
                redirected[row] = bool(again_redirected[i]) and optimised
                used[row] = "digit"
    used = [
        u + ("+redirected" if r else "") for u, r in zip(used, redirected.tolist(), strict=True)
    ]
    return Superstimuli(images.cpu(), reached, used, layer)


@torch.no_grad()
def best_in_data(
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
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    sure: float = 0.9,
) -> Superstimuli:
    """One image per class maximising its (capped) log-probability; ``activation`` is the
    probability the model gives the image's own class. With ``data`` (pixel images) every
    class starts from their mean (a digit-like start, the same for every class, so what makes
    each image its class comes from the network); with ``labels [N]`` too, a class whose image
    is not ``sure`` or not closest (correlation) to its own class's mean of ``data`` is
    re-optimised from that class mean and the better of the two kept (``used`` says which)."""
    specimen = specimen_of(model)
    k = specimen.num_classes
    classes = torch.arange(k, device="cpu")  # indexes the .cpu() probabilities below
    objective = classes_confidence(classes) + DEFAULT_REGULARISERS
    start, used = None, ["random"] * k
    if data is not None:
        start, used = (
            (classes, data.mean(0, keepdim=True).expand(k, *data.shape[1:])),
            ["mean-digit"] * k,
        )
    images, redirected = render_noting_fallbacks(specimen, objective, k, steps=steps, lr=lr,
                                                 param=param, seed=seed, start=start)  # fmt: skip
    probs = _own_probability(specimen, images)
    if data is not None and labels is not None:
        means = class_means(data, labels, k)
        bad = torch.nonzero((probs < sure) | ~closest_to_own(images, means)).flatten()
        if len(bad):
            again, again_redirected = render_noting_fallbacks(
                specimen, objective, k, steps=steps, lr=lr, param=param, seed=seed,
                start=(classes, means))  # fmt: skip
            again_probs = _own_probability(specimen, again)
            better = _quality(again, again_probs, means, sure) > _quality(
                images, probs, means, sure
            )
            for c in bad.tolist():
                if better[c]:
                    images[c], probs[c], used[c] = again[c], again_probs[c], "class-mean"
                    redirected[c] = again_redirected[c]
    used = [
        u + ("+redirected" if r else "") for u, r in zip(used, redirected.tolist(), strict=True)
    ]
    return Superstimuli(images, probs, used, "classes")


@torch.no_grad()
def _own_probability(specimen: Specimen, images: torch.Tensor) -> torch.Tensor:
    """``[K]``: the probability image ``k`` of ``images [K, C, H, W]`` gets for class ``k``."""
    probs = capture(specimen, images, {"log_softmax"})["log_softmax"].exp().cpu()
    rows = torch.arange(len(images), device="cpu")
    return probs[rows, rows]


def class_means(data: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """``[K, C, H, W]``: the mean image of each class of ``data``/``labels`` (zeros if absent)."""
    data, labels = data.cpu(), labels.cpu()
    return torch.stack([
        data[labels == c].mean(0) if bool((labels == c).any()) else torch.zeros(data.shape[1:], device=data.device)
        for c in range(k)
    ])  # fmt: skip


def mean_correlations(images: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``[N, K]``: Pearson correlation of each image ``[N, C, H, W]`` with each class mean."""

    def unit(x: torch.Tensor) -> torch.Tensor:
        flat = x.detach().cpu().double().flatten(1)
        return torch.nn.functional.normalize(flat - flat.mean(1, keepdim=True), dim=1)

    return (unit(images) @ unit(means).T).float()


def closest_to_own(images: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``[K]`` bool: class image ``k`` correlates more with class mean ``k`` than any other."""
    corr = mean_correlations(images, means)
    return corr.argmax(1) == torch.arange(len(images), device=corr.device)


def _quality(
    images: torch.Tensor, probs: torch.Tensor, means: torch.Tensor, sure: float
) -> torch.Tensor:
    """Sure and class-like beats either alone; then the higher probability."""
    return 2.0 * (probs >= sure).float() + 2.0 * closest_to_own(images, means).float() + probs


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
