"""Fine-tuning HandNet with SimpleConvNet's training loop, in two modes.

- ``constrained``: train only the interpretable parameters (Gabor parameters, rule strengths and
  profiles, biases) and the head. Every channel keeps its form; its description is recomputed
  from the updated parameters.
- ``free``: replace the hand-built conv layers by plain ``nn.Conv2d`` holding the hand-built
  weights and train every weight; :func:`filter_drift` measures how far each filter moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from dissect.gabor import gabor_fit
from dissect.infra.checkpoints import CheckpointMeta
from handnet.filters import describe_gabor
from handnet.model import HandNet
from simpleconvnet.train import TrainConfig, TrainResult, fit

__all__ = [
    "MODES",
    "FINETUNE_LR",
    "FINETUNE_PATIENCE",
    "FinetuneResult",
    "trainable_parameters",
    "freed_copy",
    "finetune",
    "filter_drift",
]

MODES = ("constrained", "free")
#: The peak learning rate of HandNet fine-tuning: the one default of ``handnet finetune`` and of
#: the pipeline's fine-tuning stages.
FINETUNE_LR = 3e-3
#: Fine-tuning may stop once validation accuracy has not improved for this many epochs
#: (``handnet finetune --patience N``). Off by default, in the command and the pipeline: with
#: the one-cycle schedule, validation accuracy plateaus while the learning rate is still high,
#: and a patience of 5 stopped the default run at epoch 11 of 40 with both fine-tuned HandNets
#: at 96.3 % test accuracy, against 98.1-98.3 % for the whole schedule.
FINETUNE_PATIENCE: int | None = None


@dataclass(frozen=True)
class FinetuneResult:
    """The fine-tuned model, the training loop's result and the trainable parameter count."""

    model: HandNet
    train: TrainResult
    trainable: int


def trainable_parameters(model: nn.Module) -> int:
    """Number of scalars with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def freed_copy(model: HandNet) -> HandNet:
    """A HandNet whose conv layers are plain ``nn.Conv2d`` holding ``model``'s current weights
    (config ``free``); the head is copied. The config keeps the constructed parameters."""
    config = replace(model.current_config(), free=tuple(model.conv_names))
    free = HandNet(config).to(next(model.parameters()).device)
    for name in model.conv_names:
        src, dst = getattr(model, name), getattr(free, name)
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)
    free.fc4.load_state_dict(model.fc4.state_dict())
    free.fc5.load_state_dict(model.fc5.state_dict())
    return free


def finetune(
    model: HandNet,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    mode: str,
    config: TrainConfig,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    out_dir: str | Path | None = None,
    metadata: CheckpointMeta | None = None,
    resume: bool = False,
    quiet: bool = False,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> FinetuneResult:
    """Fine-tune a hand-built HandNet (on its device) in ``mode`` (``constrained``/``free``).

    ``model`` is trained in place in the constrained mode; the free mode trains a
    :func:`freed_copy`. With ``out_dir`` the loop writes ``last/``, ``best/`` (the same
    checkpoint format as SimpleConvNet), ``history.csv`` and ``snapshots.safetensors``;
    ``resume`` continues from ``out_dir/last`` and ends where an uninterrupted run would;
    ``val`` (the validation digits) chooses ``best/`` and stops the run by ``config.patience``;
    ``on_epoch_end`` is passed to the training loop. The checkpoints' metadata is ``metadata``
    (the data set and parent the caller knows) as a HandNet of mode ``mode``, with its number
    of trainable parameters and what training adds.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    net = model if mode == "constrained" else freed_copy(model)
    for p in net.parameters():
        p.requires_grad_(True)
    trainable = trainable_parameters(net)
    meta = (metadata or CheckpointMeta()).with_(
        kind="HandNet", mode=mode, trainable_parameters=trainable
    )
    result = fit(net, train, test, config, val=val, out_dir=out_dir, metadata=meta, resume=resume,
                 quiet=quiet, desc=f"finetune {mode}", on_epoch_end=on_epoch_end)  # fmt: skip
    return FinetuneResult(net, result, trainable)


@torch.no_grad()
def filter_drift(before: HandNet, after: HandNet) -> pd.DataFrame:
    """One row per conv channel (1-based ``channel``): description before and after, the
    relative weight change, and for conv1 the R^2 of a Gabor fitted to the new kernel (and its
    description); for conv2 the share of weight energy outside the rule's pairs.

    The fitted Gabor is of the family conv1 was built from, zero-mean and centred on the kernel
    (:func:`dissect.gabor.gabor_fit`), so that its phase says which side of a line it fires on.
    """
    rows = []
    for name in before.conv_names:
        w0, w1 = getattr(before, name).weight.cpu(), getattr(after, name).weight.cpu()
        if name == "conv1":
            fits = [
                gabor_fit(k[0].detach().double().numpy(), zero_mean=True, centred=True) for k in w1
            ]
        change = (w1 - w0).flatten(1).norm(dim=1) / w0.flatten(1).norm(dim=1).clamp_min(1e-12)
        mask = (w0.abs().sum(dim=(2, 3)) > 0).float()[:, :, None, None]
        outside = ((w1 * (1 - mask)) ** 2).sum(dim=(1, 2, 3)) / (w1**2).sum(dim=(1, 2, 3))
        for c, desc in enumerate(getattr(before, name).descriptions):
            row = {"layer": name, "channel": c + 1, "description_before": desc,
                   "relative_change": change[c].item()}  # fmt: skip
            if name == "conv1":
                fit = fits[c]
                row.update(
                    gabor_r2=fit.r2, description_after=describe_gabor(fit.orientation, fit.phase)
                )
            else:
                row.update(off_rule_energy=outside[c].item(), description_after=desc)
            rows.append(row)
    return pd.DataFrame(rows)
