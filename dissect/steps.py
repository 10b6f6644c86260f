"""The dissection steps that both the ``dissect`` commands and the suite's pipeline run, each one
function that computes and writes its files into an output folder, so that a command and the
pipeline write the same files in the same form.

- :func:`write_labels`: ``labels.csv`` (every channel's description) and ``gabor.csv`` (the
  first conv layer's Gabor fits);
- :func:`write_superstimuli`: a superstimulus for every channel of every conv layer and for
  every class, as PNG grids, and ``activations.csv``;
- :func:`write_reasoning`: each class's reasoning, ``reasoning.txt`` and ``reasoning.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from dissect.explain import ClassReasoning, explain_classes, reasoning_table
from dissect.gabor import GaborFit, first_layer_fits
from dissect.infra.atomic import atomic_save, atomic_write_bytes, atomic_write_text
from dissect.infra.datasets import stratified_sample
from dissect.labels import describe_model
from dissect.specimen import Specimen, specimen_of
from dissect.superstimuli import (
    Superstimuli,
    best_in_data,
    class_superstimuli,
    layer_superstimuli,
)

#: Digits of each class that set the bar a superstimulus should clear (10 classes: 100).
DIGITS_PER_CLASS = 10

__all__ = [
    "LabelsResult",
    "write_labels",
    "SuperstimuliConfig",
    "SuperstimuliResult",
    "find_superstimuli",
    "best_of_digits",
    "write_superstimuli",
    "ReasoningConfig",
    "ReasoningResult",
    "write_reasoning",
]


@dataclass(frozen=True)
class LabelsResult:
    """``labels``: :func:`~dissect.labels.describe_model`'s table; ``gabor``: one row per channel
    of the first conv layer ``layer`` (1-based ``channel``, its ``description``, the fields of
    its :class:`~dissect.gabor.GaborFit`); ``evidence``: whether that layer's kernels are large
    enough for a Gabor fit to mean anything."""

    labels: pd.DataFrame
    gabor: pd.DataFrame
    fits: list[GaborFit]
    evidence: bool
    layer: str


def write_labels(model: nn.Module | Specimen, out: Path) -> LabelsResult:
    """Describe every channel of every conv layer and fit a Gabor to each first-layer filter;
    write ``out/labels.csv`` and ``out/gabor.csv``."""
    specimen = specimen_of(model)
    labels = describe_model(specimen)
    layer = specimen.conv_names[0]
    first = labels[labels["layer"] == layer].reset_index(drop=True)
    fits, evidence = first_layer_fits(specimen.conv(layer).weight.detach().cpu().numpy())
    gabor = pd.DataFrame([
        {"channel": c + 1, "description": first["description"][c], **f.as_dict()}
        for c, f in enumerate(fits)
    ])  # fmt: skip
    atomic_save(out / "labels.csv", lambda p: labels.to_csv(p, index=False))
    atomic_save(out / "gabor.csv", lambda p: gabor.to_csv(p, index=False))
    return LabelsResult(labels, gabor, fits, evidence, layer)


@dataclass(frozen=True)
class SuperstimuliConfig:
    """Optimisation ``steps``, the ``seed`` of the starting images and transforms, and the image
    parametrisation ``param`` (``"fourier"`` or ``"pixels"``)."""

    steps: int = 256
    seed: int = 0
    param: str = "fourier"


@dataclass(frozen=True)
class SuperstimuliResult:
    """``found``: every conv layer's superstimuli in order, then the classes'; ``activations``:
    one row per unit (``layer``, 1-based ``unit``, the ``activation`` reached, how it was
    ``optimised``)."""

    found: list[Superstimuli]
    activations: pd.DataFrame = field(repr=False)


def find_superstimuli(
    model: nn.Module | Specimen,
    layer: str | None,
    config: SuperstimuliConfig,
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> Superstimuli:
    """The superstimulus of every channel of conv ``layer``, or of every class when ``layer`` is
    None (its ``layer`` is then ``"classes"``); ``data``/``labels`` (training images) give the
    digit starts and fallbacks of :func:`~dissect.superstimuli.layer_superstimuli` and
    :func:`~dissect.superstimuli.class_superstimuli`."""
    c = config
    if layer is None:
        return class_superstimuli(model, steps=c.steps, seed=c.seed, param=c.param, data=data,
                                  labels=labels)  # fmt: skip
    return layer_superstimuli(model, layer, steps=c.steps, seed=c.seed, param=c.param, data=data)


@torch.no_grad()
def best_of_digits(specimen: Specimen, s: Superstimuli, digits: torch.Tensor) -> torch.Tensor:
    """``[C]``: the best each unit of ``s`` reaches over ``digits`` (post-activation mean, or
    the class probability), the bar its superstimulus should clear."""
    if s.layer == "classes":
        return specimen.run(digits, {"log_softmax"})["log_softmax"].exp().amax(0).cpu()
    return best_in_data(specimen, s.layer, torch.arange(len(s.activation), device="cpu"), digits)[0]


def write_superstimuli(
    model: nn.Module | Specimen,
    out: Path,
    config: SuperstimuliConfig | None = None,
    data: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> SuperstimuliResult:
    """A superstimulus for every channel of every conv layer and for every class: one grid per
    layer (``out/<layer>.png``, 16 a row) and for the classes (``out/classes.png``, 10 a row),
    and ``out/activations.csv``. With training ``data`` and ``labels`` the superstimuli use
    their digit starts and fallbacks, and the table gains ``best_of_100`` (the unit's best over
    :data:`DIGITS_PER_CLASS` digits of each class, a seeded stratified sample of ``data``) and
    ``beats_digits`` (whether the superstimulus reaches at least that)."""
    from dissect.figures import image_grid_png

    config = config or SuperstimuliConfig()
    specimen = specimen_of(model)
    found = [find_superstimuli(specimen, n, config, data, labels) for n in specimen.conv_names]
    found.append(find_superstimuli(specimen, None, config, data, labels))
    digits = None
    if data is not None and labels is not None:
        digits = data[stratified_sample(labels, DIGITS_PER_CLASS, config.seed).to(data.device)]
    rows = []
    for s in found:
        png = image_grid_png(s.images, columns=10 if s.layer == "classes" else 16)
        atomic_write_bytes(out / f"{s.layer}.png", png)
        bar = None if digits is None else best_of_digits(specimen, s, digits)
        for u, (a, used) in enumerate(zip(s.activation, s.used, strict=True)):
            row = {"layer": s.layer, "unit": u + 1, "activation": float(a), "optimised": used}
            if bar is not None:
                row |= {"best_of_100": float(bar[u]), "beats_digits": bool(a >= bar[u])}
            rows.append(row)
    table = pd.DataFrame(rows)
    atomic_save(out / "activations.csv", lambda p: table.to_csv(p, index=False))
    return SuperstimuliResult(found, table)


@dataclass(frozen=True)
class ReasoningConfig:
    """Which ``classes`` (0-based, default every class), the conv ``layer`` whose channels carry
    the scores (default the last) and how many channels to name per class (``top``)."""

    classes: tuple[int, ...] | None = None
    layer: str | None = None
    top: int = 3


@dataclass(frozen=True)
class ReasoningResult:
    """The reasoning of each class, its ``text`` (a paragraph per class) and its ``table``
    (:func:`~dissect.explain.reasoning_table`)."""

    reasons: list[ClassReasoning]
    text: str
    table: pd.DataFrame = field(repr=False)


def write_reasoning(
    model: nn.Module | Specimen,
    images: torch.Tensor,
    labels: torch.Tensor,
    out: Path,
    config: ReasoningConfig | None = None,
    descriptions: pd.DataFrame | None = None,
    stem: str = "reasoning",
) -> ReasoningResult:
    """Each class's reasoning derived on ``images [N, C, H, W]`` / ``labels [N]`` (training
    images, so that the test split can check it): ``out/<stem>.txt`` (a paragraph per class)
    and ``out/<stem>.csv``. ``descriptions``: :func:`~dissect.labels.describe_model`'s table
    (computed when absent)."""
    config = config or ReasoningConfig()
    classes = None if config.classes is None else list(config.classes)
    reasons = explain_classes(model, images, labels, classes=classes, layer=config.layer,
                              descriptions=descriptions, top=config.top)  # fmt: skip
    text = "\n\n".join(r.paragraph() for r in reasons)
    atomic_write_text(out / f"{stem}.txt", text + "\n")
    table = reasoning_table(reasons)
    atomic_save(out / f"{stem}.csv", lambda p: table.to_csv(p, index=False))
    return ReasoningResult(reasons, text, table)
