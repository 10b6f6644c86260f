"""Superstimuli: inputs optimised to excite a channel (or a class) as much as possible.

The loop (:func:`render`) is pure: it returns the images; the caller saves. All channels of a
layer (or all classes) are optimised together, one image each, in one batch; a seed makes the
result reproducible. Works natively on 28x28 single-channel images, on CPU or GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dissect.activations import check_layer
from dissect.errors import AuditError
from dissect.objectives import Objective, channels_batch, classes_batch, l2, total_variation
from dissect.param import PARAMETRISATIONS
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


def _depth(model: nn.Module, needs: set[str]) -> int:
    """How many conv blocks must run to produce every activation in ``needs`` (99: the head)."""
    depth = 0
    for name in needs:
        if name == "input":
            continue
        if name in ("logits", "log_softmax"):
            return 99
        depth = max(depth, int(name[-1]))
    return depth


def capture(model: nn.Module, images: torch.Tensor, needs: set[str]) -> dict[str, torch.Tensor]:
    """Run ``model`` on pixel images ``[N, 1, 28, 28]`` only as deep as ``needs`` requires and
    return the activations by name (``input``, ``convI``, ``reluI``, ``logits``, ``log_softmax``)."""
    acts = {"input": images}
    depth = _depth(model, needs)
    h = model.normalize(images)
    for i in range(1, min(depth, len(model.conv_names)) + 1):
        pre = getattr(model, f"conv{i}")(h)
        post = torch.relu(pre)
        acts[f"conv{i}"], acts[f"relu{i}"] = pre, post
        h = getattr(model, f"pool{i}")(post)
    if depth == 99:
        logits = model.fc5(model.fc4(torch.flatten(h, 1)))
        acts["logits"], acts["log_softmax"] = logits, torch.log_softmax(logits, 1)
    return acts


def render(
    model: nn.Module,
    objective: Objective,
    n: int,
    *,
    steps: int = 256,
    lr: float = 0.05,
    param: str = "fourier",
    transforms: Transform | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Maximise ``objective`` (summed over the batch) for ``n`` images; returns ``[n, 1, 28, 28]``
    in [0, 1]. Only the images are optimised; the model is left unchanged."""
    if param not in PARAMETRISATIONS:
        raise AuditError(f"unknown parametrisation {param!r}: use {', '.join(PARAMETRISATIONS)}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    params, to_image = PARAMETRISATIONS[param](n, g, device=device)
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
            loss = -objective(capture(model, image, objective.needs)).sum()
            loss.backward()
            optimizer.step()
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return to_image().detach()


@dataclass(frozen=True)
class Superstimuli:
    """``images [C, 1, 28, 28]`` in [0, 1]; ``activation [C]`` the post-ReLU mean activation each
    reaches in its own unit (or the class probability); ``used[c]`` is ``"post"`` or ``"pre"``:
    which activation was optimised (``pre`` where the ReLU gave no gradient at the start)."""

    images: torch.Tensor
    activation: torch.Tensor
    used: list[str]
    layer: str


DEFAULT_REGULARISERS = 0.1 * total_variation() + 0.05 * l2()


@torch.no_grad()
def _dead_at_start(
    model: nn.Module, i: int, idx: torch.Tensor, seed: int, param: str
) -> torch.Tensor:
    """Which of channels ``idx`` have zero post-ReLU activation everywhere on their start image."""
    g = torch.Generator().manual_seed(seed)
    _, to_image = PARAMETRISATIONS[param](len(idx), g, device=next(model.parameters()).device)
    post = capture(model, to_image(), {f"relu{i}"})[f"relu{i}"]
    return (post[torch.arange(len(idx)), idx.to(post.device)].amax((1, 2)) <= 0).cpu()


def _layer_width(model: nn.Module, layer: str) -> int:
    return int(getattr(model, layer).weight.shape[0])


def _fire_or_rise(i: int, idx: torch.Tensor) -> Objective:
    """Image ``b`` maximises the post-ReLU mean of channel ``idx[b]`` where the channel fires
    somewhere (so the ReLU passes a gradient), else its pre-activation mean."""
    post, pre = channels_batch(f"relu{i}", idx), channels_batch(f"conv{i}", idx)
    rows = torch.arange(len(idx))

    def fn(a: dict[str, torch.Tensor]) -> torch.Tensor:
        relu = a[f"relu{i}"]
        fires = relu[rows, idx.to(relu.device)].amax((1, 2)) > 0
        return torch.where(fires, post(a), pre(a))

    return Objective(fn, {f"relu{i}", f"conv{i}"}, f"conv{i}:batch")


def layer_superstimuli(
    model: nn.Module,
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
    i = check_layer(model, layer)
    width = _layer_width(model, layer)
    chosen = list(range(width)) if channels is None else list(channels)
    bad = [c + 1 for c in chosen if not 0 <= c < width]
    if bad:
        raise AuditError(f"{layer} has channels 1..{width}; got {', '.join(map(str, bad))}")
    idx = torch.tensor(chosen)
    dead = _dead_at_start(model, i, idx, seed, param)
    objective = _fire_or_rise(i, idx) + DEFAULT_REGULARISERS
    images = render(model, objective, len(idx), steps=steps, lr=lr, param=param, seed=seed)
    with torch.no_grad():
        reached = channels_batch(f"relu{i}", idx)(capture(model, images, {f"relu{i}"})).cpu()
    return Superstimuli(
        images.cpu(), reached, ["pre" if d else "post" for d in dead.tolist()], layer
    )


def class_superstimuli(
    model: nn.Module, *, steps: int = 256, seed: int = 0, param: str = "fourier", lr: float = 0.05
) -> Superstimuli:
    """One image per class maximising the study's class objective; ``activation`` is the
    probability the model gives the image's own class."""
    k = int(model.fc5.out_features)
    classes = torch.arange(k)
    images = render(
        model,
        classes_batch(classes) + DEFAULT_REGULARISERS,
        k,
        steps=steps,
        lr=lr,
        param=param,
        seed=seed,
    )
    with torch.no_grad():
        probs = capture(model, images, {"log_softmax"})["log_softmax"].exp().cpu()
    return Superstimuli(images.cpu(), probs[classes, classes], ["logits"] * k, "classes")


def plainness_scores(images: torch.Tensor) -> torch.Tensor:
    """How little structure each image ``[N, 1, H, W]`` has, in [0, 1] (1 = plain).

    Structure needs contrast (the image's standard deviation, against 0.25 for a crisp stroke)
    and energy outside the lowest frequencies (share of the mean-free image's power beyond 2
    cycles per image); plainness is ``1 - sqrt(contrast * detail)``.
    """
    x = images.detach().double()[:, 0]
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
    model: nn.Module, layer: str, *, steps: int = 128, seed: int = 0
) -> torch.Tensor:
    """Plainness ``[C]`` of the superstimulus of every channel of ``layer``."""
    return plainness_scores(layer_superstimuli(model, layer, steps=steps, seed=seed).images)
