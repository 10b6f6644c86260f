"""The hand-built readout: fit fc4/fc5 on frozen conv features by a convex fit.

A multinomial logistic regression with an L2 penalty is fitted (full-batch L-BFGS) on the
standardised, flattened output of the last conv block; no gradient touches the conv layers.
Its ``[classes, D]`` weight ``W`` (rank <= classes) is then split exactly as ``W = fc5 @ fc4``:
with the SVD ``W = U S V^T``, fc4's first ``classes`` rows are ``sqrt(S) V^T`` and fc5's
first columns ``U sqrt(S)`` (the scale shared evenly, which fine-tunes better than putting it
all in fc5); fc4's other rows are the leading principal directions of the features orthogonal to
``V`` (with zero fc5 columns), so that fine-tuning starts from the fitted map with live units.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from simpleconvnet.model import SimpleConvNet

__all__ = ["HeadFit", "frozen_convs", "frozen_features", "fit_logistic", "set_head", "fit_head"]


@dataclass(frozen=True)
class HeadFit:
    """The fitted linear map ``logits = features @ weight.T + bias`` and its train accuracy."""

    weight: torch.Tensor  # [classes, D]
    bias: torch.Tensor  # [classes]
    train_accuracy: float


# L-BFGS stops when the largest gradient entry (standardised units) or a step's change of the
# loss falls below these. Measured on the pruned net's 16,000 head-refit features (784 each,
# the explain stage's compile): against 1e-9 and 1e-12 the fit takes 0.6x the time, its weights
# move by at most 1.5e-3 of their largest and its test predictions stay the same at every L2 of
# the compile's grid.
TOLERANCE_GRAD, TOLERANCE_CHANGE = 1e-7, 1e-10


@contextmanager
def frozen_convs(model: SimpleConvNet) -> Iterator[None]:
    """Within the block no parameter of a conv layer of ``model`` has ``requires_grad`` (no
    gradient can reach one); afterwards each has its flag back."""
    params = [p for name in model.conv_names for p in model.get_submodule(name).parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@torch.no_grad()
def frozen_features(
    model: SimpleConvNet, images: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """``images [N, 1, 28, 28] -> [N, D]`` flattened output of the last conv block, on the
    model's device (the images may be elsewhere)."""
    device = next(model.parameters()).device
    parts = [torch.flatten(model.features(images[i : i + batch_size].to(device)), 1)
             for i in range(0, len(images), batch_size)]  # fmt: skip
    return torch.cat(parts)


def fit_logistic(
    features: torch.Tensor, labels: torch.Tensor, classes: int, l2: float = 1e-4,
    max_iter: int = 300, start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> HeadFit:  # fmt: skip
    """Multinomial logistic regression on ``features [N, D]`` (mean cross-entropy plus
    ``l2 * |W|^2`` in standardised units). Convex (strictly, for ``l2 > 0``), so the answer
    depends neither on a seed nor on the ``start`` (``([classes, D], [classes])`` in
    standardised units; zeros by default). Fitted on the features' device."""
    x = features.double()
    labels = labels.to(x.device)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    w0, b0 = start or (
        torch.zeros(classes, z.shape[1], device=x.device),
        torch.zeros(classes, device=x.device),
    )
    w = w0.to(x.device, torch.float64).clone().requires_grad_(True)
    b = b0.to(x.device, torch.float64).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, tolerance_grad=TOLERANCE_GRAD,
                            tolerance_change=TOLERANCE_CHANGE, history_size=20,
                            line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, labels) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        weight = w / std
        bias = b - weight @ mean
        acc = ((x @ weight.T + bias).argmax(1) == labels).double().mean().item()
    return HeadFit(weight.float(), bias.float(), acc)


@torch.no_grad()
def set_head(model: SimpleConvNet, fit: HeadFit, features: torch.Tensor) -> None:
    """Set ``model.fc4``/``model.fc5`` so that ``fc5(fc4(f)) == f @ fit.weight.T + fit.bias``."""
    fc4, fc5 = model.fc4, model.fc5
    width, classes = fc4.out_features, fit.weight.shape[0]
    if width < classes:
        raise ValueError(f"fc4 width {width} is below the {classes} classes of the fitted map")
    u, s, vt = torch.linalg.svd(fit.weight.double(), full_matrices=False)
    centred = features.double() - features.double().mean(0)
    rest = centred - centred @ vt.T @ vt  # features with the fitted directions removed
    _, _, pc = torch.linalg.svd(rest, full_matrices=False)
    rows = torch.cat([vt, pc[: width - classes]])
    root = s.sqrt()
    rows[:classes] *= root[:, None]
    fc4.weight.copy_(rows.float())
    fc4.bias.zero_()
    fc5.weight.zero_()
    fc5.weight[:, :classes] = (u * root).float()
    fc5.bias.copy_(fit.bias)


def fit_head(
    model: SimpleConvNet, images: torch.Tensor, labels: torch.Tensor, l2: float = 1e-4
) -> HeadFit:
    """Fit the readout of ``model`` on ``images [N, 1, 28, 28]``/``labels [N]`` with every
    conv layer frozen (:func:`frozen_convs`), and write it into fc4/fc5. Returns the fit."""
    with frozen_convs(model):
        features = frozen_features(model, images)
        fit = fit_logistic(features, labels, model.fc5.out_features, l2)
        set_head(model, fit, features)
    return fit
