"""Structural surgery on a SimpleConvNet: remove outer channels of a conv layer (and the
matching inner channels / fc4 inputs downstream), or drop a whole conv layer.

Removing a channel is exact: because relu(0) = 0 and maxpool of zeros is zero, a channel whose
filter and bias are zero contributes nothing downstream, so the smaller model computes the same
outputs as the model with those channels zeroed (see :func:`zero_channels`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from dissect.infra.errors import AuditError
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, feature_size, init_weights

__all__ = ["remove_channels", "zero_channels", "drop_last_conv", "conv_parameter_count"]


def _conv_index(model: SimpleConvNet, layer: str) -> int:
    if layer not in model.conv_names:
        raise AuditError(f"no conv layer {layer!r}: valid layers are {', '.join(model.conv_names)}")
    return model.conv_names.index(layer)


def _check_keep(keep: Sequence[int], width: int, layer: str) -> torch.Tensor:
    # CPU indices: checked here with int(), and they index the weights on any device
    idx = torch.as_tensor(sorted(set(int(k) for k in keep)), dtype=torch.long, device="cpu")
    if len(idx) == 0 or int(idx.min()) < 0 or int(idx.max()) >= width:
        raise AuditError(f"channels to keep in {layer} must be 0..{width - 1}, at least one")
    return idx


@torch.no_grad()
def remove_channels(model: SimpleConvNet, layer: str, keep: Sequence[int]) -> SimpleConvNet:
    """A new, smaller model keeping only outer channels ``keep`` (0-based) of ``layer``."""
    i = _conv_index(model, layer)
    convs = list(model.config.convs)
    idx = _check_keep(keep, convs[i], layer)
    convs[i] = len(idx)
    config = SimpleConvNetConfig(**{**model.config.to_dict(), "convs": tuple(convs)})
    small = SimpleConvNet(config).to(next(model.parameters()).device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state[f"{layer}.weight"] = state[f"{layer}.weight"][idx]
    state[f"{layer}.bias"] = state[f"{layer}.bias"][idx]
    if i + 1 < len(convs):
        nxt = model.conv_names[i + 1]
        state[f"{nxt}.weight"] = state[f"{nxt}.weight"][:, idx]
    else:
        side = feature_size(len(convs))
        w = state["fc4.weight"].reshape(state["fc4.weight"].shape[0], -1, side * side)
        state["fc4.weight"] = w[:, idx].reshape(w.shape[0], -1)
    small.load_state_dict(state)
    return small


@torch.no_grad()
def zero_channels(model: SimpleConvNet, layer: str, drop: Sequence[int]) -> SimpleConvNet:
    """A copy of ``model`` whose outer channels ``drop`` of ``layer`` have zero filter and bias."""
    _conv_index(model, layer)
    clone = copy.deepcopy(model)
    conv = getattr(clone, layer)
    conv.weight[list(drop)] = 0
    conv.bias[list(drop)] = 0
    return clone


def drop_last_conv(model: SimpleConvNet, generator: torch.Generator) -> SimpleConvNet:
    """The model without its last conv block (conv3): conv1/conv2 weights are kept, fc4 gets
    a new input size and is re-initialised from ``generator``; fc5 is kept."""
    if len(model.conv_names) < 3:
        raise AuditError("the model has only two conv layers: there is no conv3 to drop")
    config = SimpleConvNetConfig(**{**model.config.to_dict(), "convs": model.config.convs[:-1]})
    small = SimpleConvNet(config)
    init_weights(small, generator)
    state = small.state_dict()
    for key, value in model.state_dict().items():
        if key in state and not key.startswith("fc4.") and state[key].shape == value.shape:
            state[key] = value.clone()
    small.load_state_dict(state)
    return small.to(next(model.parameters()).device)


def conv_parameter_count(model: SimpleConvNet) -> int:
    """Weights and biases of all conv layers."""
    return sum(
        getattr(model, n).weight.numel() + getattr(model, n).bias.numel() for n in model.conv_names
    )
