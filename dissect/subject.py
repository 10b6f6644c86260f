"""What a dissection looks at: a model (the suite's checkpoint or a person's own network) with
its input spec, and the images to dissect it with.

``open_model`` is the one call for a person's own network in Python::

    import dissect
    specimen = dissect.open_model("my_net.py:Net", "net.pt", normalize=[(0.1307, 0.3081)])
    dissect.describe_model(specimen)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dissect.foreign import load_model
from dissect.infra.checkpoints import CheckpointMeta
from dissect.infra.errors import AuditError
from dissect.specimen import InputSpec, Specimen

__all__ = [
    "open_model",
    "Subject",
    "fit_images",
    "parse_shape",
    "parse_normalize",
    "own_network_meta",
]


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"C,H,W"`` -> ``(C, H, W)``, each a positive integer."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise AuditError(f"--input {text!r}: give three positive integers C,H,W, e.g. 1,28,28")
    return shape


def parse_normalize(text: str | None, channels: int) -> list[tuple[float, float]]:
    """``"MEAN,STD"`` (one pair for every channel) or one pair per channel, flattened."""
    if text is None:
        return [(0.0, 1.0)]
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 2 * channels) or any(s <= 0 for s in values[1::2]):
        raise AuditError(
            f"--normalize {text!r}: give MEAN,STD (one pair) or {channels} pairs "
            f"MEAN1,STD1,...,MEAN{channels},STD{channels} for the {channels} input channel(s), "
            "with positive STD"
        )
    return list(zip(values[0::2], values[1::2], strict=True))


def open_model(
    model: str | nn.Module,
    weights: str | Path | None = None,
    *,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    normalize: Sequence[tuple[float, float]] = ((0.0, 1.0),),
    classes: Sequence[str] | None = None,
    logits: str | None = None,
    model_args: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> Specimen:
    """A person's network ready for every ``dissect`` function.

    ``model``: an ``nn.Module`` or ``"path/to/file.py:Name"`` / ``"package.module:Name"`` (a
    class or factory, called with ``model_args``); ``weights``: ``.safetensors`` or a PyTorch
    state dict, read without unpickling objects; ``input_shape``: ``(C, H, W)``;
    ``normalize``: ``(mean, std)`` once or per channel, applied to pixels in [0, 1] before the
    model; ``classes``: class names; ``logits``: the module whose output is the class scores
    (default: the last ``nn.Linear`` called)."""
    if isinstance(model, str):
        net = load_model(model, weights, model_args)
    else:
        net = model
        if weights is not None:
            from dissect.foreign import load_weights, read_state_dict

            load_weights(net, read_state_dict(weights))
    net.to(device).eval()
    c = input_shape[0]
    pairs = list(normalize)
    if len(pairs) not in (1, c):
        raise AuditError(f"normalize has {len(pairs)} pairs for {c} input channel(s)")
    spec = InputSpec(
        *input_shape,
        mean=tuple(m for m, _ in pairs),
        std=tuple(s for _, s in pairs),
        classes=tuple(classes) if classes else None,
    )
    return Specimen(net, spec, logits)


def fit_images(images: torch.Tensor, spec: InputSpec) -> tuple[torch.Tensor, list[str]]:
    """Data-set images ``[N, C', H', W']`` made to fit the model's input: grey repeated to
    every channel, resized bilinearly. Returns the images and notes on what was done."""
    notes = []
    c, h, w = spec.shape
    if images.shape[1] != c:
        if images.shape[1] != 1:
            raise AuditError(
                f"the data set has {images.shape[1]}-channel images but the model reads {c} channels"
            )
        images = images.repeat(1, c, 1, 1)
        notes.append(f"grey images repeated to {c} channels")
    if tuple(images.shape[2:]) != (h, w):
        notes.append(f"images resized from {images.shape[2]}x{images.shape[3]} to {h}x{w}")
        images = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
        images = images.clamp(0, 1)
    return images, notes


def own_network_meta(
    specimen: Specimen,
    model: str,
    weights: str | None,
    input_shape: tuple[int, int, int],
    dataset: str,
    data_dir: str | None = None,
) -> CheckpointMeta:
    """The metadata of a person's own network, in the suite's checkpoint form: its class as
    ``kind``, the data set it is dissected with as ``data``, and how it was opened (``model``
    spec, ``weights`` file, ``input`` shape) in ``extra``."""
    return CheckpointMeta(
        kind=type(specimen.model).__name__,
        data={"name": dataset, "data_dir": data_dir},
        extra={"model": model, "weights": weights, "input": list(input_shape)},
    )


@dataclass
class Subject:
    """A specimen and its test images and labels (``images [N, C, H, W]`` in [0, 1]), with the
    checkpoint's metadata (for a person's own network: :func:`own_network_meta`)."""

    specimen: Specimen
    images: torch.Tensor
    labels: torch.Tensor
    name: str
    meta: CheckpointMeta
