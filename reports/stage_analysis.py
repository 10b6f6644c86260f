"""The pipeline's stages that look at a network: its measurements, its dissection (descriptions,
first-layer figures, sample audits), its superstimuli and its explanation (contribution tables,
class drivers, ablations, reasoning in words). Each writes every file the report shows, so that
the rendering only reads files."""

from __future__ import annotations

import io
import json
from functools import partial
from typing import Any

import pandas as pd
import torch

from dissect.infra.atomic import atomic_save, atomic_write_bytes, atomic_write_text
from dissect.infra.checkpoints import CheckpointMeta
from reports.networks import CHECKED, Network, checkpoint_of, load_network
from reports.pipeline import StageContext

__all__ = ["run_measure", "run_dissect", "run_superstimuli", "run_explain"]


# -- every network: the measurements the report shows -----------------------------------------
def run_measure(ctx: StageContext, net: Network) -> dict[str, Any]:
    from dissect.infra.checkpoints import load_checkpoint_data
    from reports.measures import conv_macs, parameter_count, predictions

    model, meta = load_network(ctx, net)
    images, labels = load_checkpoint_data(meta, "test")
    frame = predictions(model, images, labels)
    atomic_save(ctx.out / "predictions.csv", lambda p: frame.to_csv(p, index=False))
    correct = frame["label"] == frame["pred"]
    per_class = correct.groupby(frame["label"]).mean()
    summary = {
        "network": net.key,
        "title": net.title,
        "accuracy": float(correct.mean()),
        "per_class": {int(k): float(v) for k, v in per_class.items()},
        "parameters": parameter_count(model),
        "conv_macs": conv_macs(model),
        "conv_widths": [int(getattr(model, n).out_channels) for n in model.conv_names],
    }
    atomic_write_text(ctx.out / "metrics.json", json.dumps(summary, indent=2))
    write_examples(ctx, frame, images)
    return summary


def write_examples(
    ctx: StageContext, frame: pd.DataFrame, images: torch.Tensor, per_cell: int = 4
) -> None:
    """The test digits the confusion section shows (the most confident ones of each cell and
    the most confident mistakes), as ``examples.npz`` (``index``, ``images [N, 28, 28]``)."""
    import numpy as np

    picks = {
        int(i)
        for _, g in frame.groupby(["label", "pred"])
        for i in g.nlargest(per_cell, "confidence")["index"]
    }
    picks |= {
        int(i) for i in frame[frame["label"] != frame["pred"]].nlargest(16, "confidence")["index"]
    }
    index = np.array(sorted(picks), dtype=np.int64)
    digits = images[torch.as_tensor(index, dtype=torch.long, device="cpu"), 0].numpy()
    buffer = io.BytesIO()  # numpy would add ".npz" to the temporary file's name
    np.savez_compressed(buffer, index=index, images=digits)
    atomic_write_bytes(ctx.out / "examples.npz", buffer.getvalue())


def line_probes() -> tuple[torch.Tensor, list[str]]:
    """One line probe per orientation (the middle variant of each): ``[4, 1, 28, 28]``."""
    from dissect.probes import make_probes

    probes = make_probes()
    picks = []
    for name in probes.class_names:
        members = [
            i
            for i, (c, k) in enumerate(zip(probes.classes, probes.kinds, strict=True))
            if c == name and k == "line"
        ]  # noqa: E501
        if members:
            picks.append((members[len(members) // 2], name))
    return probes.images[[i for i, _ in picks]], [n for _, n in picks]


def run_dissect(ctx: StageContext, net: Network) -> dict[str, Any]:
    """Channel descriptions (probes), conv1 Gabor fits and conv1 maps of the line probes; for a
    hand-built network, its written descriptions beside them (``written.csv``)."""
    from dissect.activations import activation_maps
    from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
    from dissect.probes import ORIENTATION_OF
    from dissect.steps import write_labels
    from reports.figures import maps_table

    model, meta = load_checkpoint(checkpoint_of(ctx, net.stage), map_location=ctx.device)
    found = write_labels(model, ctx.out)
    first = found.labels[found.labels["layer"] == found.layer].reset_index(drop=True)
    images, names = line_probes()
    maps = activation_maps(model, found.layer, images.to(ctx.device)).cpu().numpy()
    png = maps_table(images[:, 0].numpy(), maps, names)
    atomic_save(ctx.out / "probes.png", lambda p: p.write_bytes(png))
    test = load_checkpoint_data(meta, "test")
    read_as_written = write_written(ctx, model, found.labels)
    write_audits(ctx, model, test)
    write_first_layer(ctx, model, test[0], net.title)
    return {
        "confident_share": float(found.labels["confident"].mean()),
        "gabor_r2": float(found.gabor["r2"].mean()),
        "orientations": [f.orientation for f in found.fits if not f.noise_like],
        "described_orientations": sorted(
            {
                ORIENTATION_OF[d]
                for d, ok in zip(first["description"], first["confident"], strict=True)
                if ok and d in ORIENTATION_OF
            }
        ),  # fmt: skip
        **read_as_written,
    }


def write_written(ctx: StageContext, model: Any, labels: pd.DataFrame) -> dict[str, Any]:
    """For a hand-built network: every channel's written description beside dissect's reading
    of it (``written.csv``, :func:`handnet.readable.written_and_read`); returns the agreeing
    share per layer and in all. Nothing for other networks."""
    from handnet.model import HandNet
    from handnet.readable import agreement, written_and_read

    if not isinstance(model, HandNet):
        return {}
    table = written_and_read(model, labels)
    atomic_save(ctx.out / "written.csv", lambda p: table.to_csv(p, index=False))
    return {"read_as_written": agreement(table)}


def write_first_layer(
    ctx: StageContext, model: Any, images: torch.Tensor, title: str, sample: int = 0
) -> None:
    """conv1's filters (``conv1-filters.png``) and the maps they make of test digit ``sample``
    of ``images`` (``conv1-maps.png``)."""
    from dissect.specimen import specimen_of
    from reports.figures import activation_grid, mosaic_png

    conv1 = specimen_of(model).conv("conv1")
    digit = images[sample : sample + 1].to(conv1.weight.device)
    with torch.no_grad():
        maps = torch.relu(conv1(model.normalize(digit))).cpu().numpy()
    caption = f"{title}: conv1 on test digit #{sample}"
    atomic_write_bytes(ctx.out / "conv1-filters.png", mosaic_png(conv1.weight))
    atomic_write_bytes(
        ctx.out / "conv1-maps.png", activation_grid(images[sample, 0].numpy(), maps[0], caption)
    )


def write_audits(ctx: StageContext, model: Any, test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The ``dissect audit`` explanation of a few ``test`` digits: the first ones and the most
    confident mistakes (half each), with their images, as ``audit.json``."""
    from dissect.audit import explain_prediction
    from dissect.mistakes import confident_mistakes
    from reports.figures import digit_png

    images, labels = test
    n = ctx.config.audit_samples
    wrong = confident_mistakes(model, images, labels, n=n - n // 2)["index"].tolist()
    picks = [i for i in range(len(images)) if i not in wrong][: n - len(wrong)] + wrong
    audits = []
    for i in picks:
        explanation = explain_prediction(model, images[i : i + 1])
        name = f"audit-{i}.png"
        png = digit_png(images[i, 0].numpy(), scale=4)
        atomic_write_bytes(ctx.out / name, png)
        audits.append({"index": i, "label": int(labels[i]), "pred": explanation.predicted, "image": name,
                       "text": explanation.text(int(labels[i]))})  # fmt: skip
    atomic_write_text(ctx.out / "audit.json", json.dumps(audits, indent=2))


def run_superstimuli(ctx: StageContext, net: Network) -> dict[str, Any]:
    """A superstimulus for every channel of every conv layer, and for every class."""
    from dissect.infra.checkpoints import load_checkpoint_data
    from dissect.steps import SuperstimuliConfig, write_superstimuli

    c = ctx.config
    model, meta = load_network(ctx, net)
    images, labels = load_checkpoint_data(meta, "train")
    config = SuperstimuliConfig(steps=c.superstimulus_steps, seed=c.seed)
    found = write_superstimuli(model, ctx.out, config, images.to(ctx.device), labels.to(ctx.device))
    return {"units": len(found.activations), "steps": c.superstimulus_steps}


def dissect_channel(
    model: Any, layer: str, o: int, image: torch.Tensor, data: torch.Tensor, inner: list[str]
) -> tuple[bytes, pd.DataFrame, float]:
    """The dissection figure and contribution table of outer channel ``o`` of ``layer``, and
    the largest error of the exact decomposition ``y = bias + sum_j a_j``."""
    from dissect.contributions import contribution_table, layer_contributions
    from dissect.figures import dissection_figure
    from reports.figures import figure_png

    x, a, bias, y = (t.detach().cpu() for t in layer_contributions(model, layer, image, o))
    w = getattr(model, layer).weight[o].detach().cpu()
    title = f"{layer} channel {o + 1}"
    fig = dissection_figure(
        x[0].numpy(), w.numpy(), a[0].numpy(), y[0].numpy(), float(bias), inner, title
    )
    error = float((bias + a.sum(1) - y).abs().max())
    table = contribution_table(model, layer, o, image, data=data, inner_descriptions=inner)
    return figure_png(fig), table, error


def run_explain(ctx: StageContext, net: Network, sample: int = 0) -> dict[str, Any]:
    """Dissection figure + contribution table of every outer channel after conv1, the channels
    driving each class, ablations, each class's reasoning in words, and (for the networks in
    :data:`~reports.networks.CHECKED`) every claim of it checked. Roles and reasoning are derived on the training digits; the claims are checked on
    the test digits (:func:`write_checks`)."""
    from dissect.ablation import ablation_table
    from dissect.head import class_drivers
    from dissect.infra.checkpoints import load_checkpoint_data
    from dissect.infra.datasets import stratified_sample

    model, meta = load_network(ctx, net)
    images, labels = load_checkpoint_data(meta, "test")
    train_images, train_labels = load_checkpoint_data(meta, "train")
    # 200 training digits, 20 of each class: the roles in the tables are derived on them
    reference = train_images[stratified_sample(train_labels, 20, seed=0)]
    labels_table = pd.read_csv(ctx.run_dir / f"dissect-{net.key}" / "labels.csv")
    weak: dict[tuple[str, int], list[int]] = {}
    reinforcing: dict[tuple[str, int], list[int]] = {}
    errors = []
    for i, layer in enumerate(model.conv_names[1:], start=1):
        inner = labels_table[labels_table["layer"] == model.conv_names[i - 1]][
            "description"
        ].tolist()  # noqa: E501
        for o in range(getattr(model, layer).weight.shape[0]):
            png, table, error = dissect_channel(
                model, layer, o, train_images[sample : sample + 1], reference, inner
            )  # noqa: E501
            errors.append(error)
            stem = ctx.out / "channels" / f"{layer}-{o + 1:02d}"
            atomic_write_bytes(stem.with_suffix(".png"), png)
            atomic_save(stem.with_suffix(".csv"), partial(table.to_csv, index=False))
            rows = [(int(j) - 1, r) for j, r in zip(table["j"], table["role"], strict=True) if j != "bias"]  # fmt: skip
            weak[(layer, o)] = [j for j, r in rows if r == "weak"]
            reinforcing[(layer, o)] = [j for j, r in rows if r == "reinforces"]
    drivers = class_drivers(model, images, labels)
    atomic_save(
        ctx.out / "head.csv", lambda p: drivers[drivers["rank"] <= 3].to_csv(p, index=False)
    )  # noqa: E501
    ablations = ablation_table(model, images, labels)
    atomic_save(ctx.out / "ablation.csv", lambda p: ablations.to_csv(p, index=False))
    reasons = write_reasoning(ctx, model, meta, labels_table)
    card = (
        write_checks(ctx, model, reasons, (weak, reinforcing), labels_table, images, labels)
        if net.key in CHECKED
        else {}
    )
    compiled = (
        write_compiled(
            ctx, model, meta, labels_table, (train_images, train_labels), (images, labels)
        )
        if net.key in CHECKED
        else {}
    )
    return {
        **write_coverage(ctx, model, reasons),
        **compiled,
        "checks": card,
        "check_draws": CHECK_DRAWS,
        "decomposition_error": max(errors, default=None),
    }


def write_coverage(ctx: StageContext, model: Any, reasons: list[Any]) -> dict[str, float]:
    """Per class, the share of its positive score carried by the last conv layer's channels
    that are confidently described: by dissect's probes and, for a hand-built network, by its
    written descriptions too (``coverage.csv``); returns the smallest of each."""
    last = model.conv_names[-1]
    written = model.descriptions()[last] if hasattr(model, "descriptions") else None
    rows = []
    for r in reasons:
        row = {"class": r.name, "coverage_probed": r.coverage}
        if written is not None:
            row["coverage_written"] = sum(max(share, 0.0) for share, words
                                          in zip(r.shares, written, strict=True) if words.strip())  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows)
    atomic_save(ctx.out / "coverage.csv", lambda p: table.to_csv(p, index=False))
    return {f"{c}_min": float(table[c].min()) for c in table.columns if c != "class"}


def write_compiled(
    ctx: StageContext,
    model: Any,
    meta: CheckpointMeta,
    descriptions: pd.DataFrame,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
) -> dict[str, float]:
    """How much of a trained SimpleConvNet its explanation captures: the network its words
    describe (:func:`handnet.compile.compile_explanation`, as ``handnet build --from`` makes
    it), conv1 compiled alone, then conv1 and conv2 (a third layer kept as trained), then, in a
    three-layer net, all three; and, separately, conv1 replaced by the Gabor fits of its own
    weights instead of its words; its head refitted on the training digits (penalty chosen on the
    validation split), the test split reported beside the network as trained
    (``compiled.csv``). Nothing for hand-built networks."""
    from handnet.compile import compile_explanation
    from simpleconvnet.model import SimpleConvNet
    from simpleconvnet.train import evaluate

    trained = isinstance(model, SimpleConvNet) and meta.kind == "SimpleConvNet"
    if not trained:
        return {}  # a hand-built network is its own compiled explanation
    names = list(model.conv_names)
    dataset = str(meta.data.get("name"))
    original = evaluate(model, *test).accuracy
    rows: list[dict[str, Any]] = [
        {"network": "as trained", "layers from words": "none", "test accuracy": original,
         "error": 1 - original, "error / original's": 1.0}
    ]  # fmt: skip
    versions = [(tuple(names[:n]), "words") for n in range(1, len(names) + 1)]
    for layers, first in [*versions, (("conv1",), "gabor")]:
        net = compile_explanation(model, *train, layers=layers, descriptions=descriptions,
                                  dataset=dataset, first=first)  # fmt: skip
        accuracy = evaluate(net, *test).accuracy
        kept = names[len(layers) :]
        words = ", ".join(layers) + (f" ({', '.join(kept)} as trained)" if kept else "")
        rows.append({"network": "compiled" if first == "words" else "conv1 from its Gabor fits",
                     "layers from words": words if first == "words" else "none",
                     "test accuracy": accuracy, "error": 1 - accuracy,
                     "error / original's": (1 - accuracy) / max(1e-9, 1 - original)})  # fmt: skip
    table = pd.DataFrame(rows)
    atomic_save(ctx.out / "compiled.csv", lambda p: table.to_csv(p, index=False))
    out = {"compiled_conv1_accuracy": float(rows[1]["test accuracy"]),
           "compiled_conv1_conv2_accuracy": float(rows[2]["test accuracy"]),
           "gabor_fit_conv1_accuracy": float(rows[-1]["test accuracy"])}  # fmt: skip
    if len(names) == 3:
        out["compiled_all_accuracy"] = float(rows[3]["test accuracy"])
    return out


#: Random channel sets each removal claim is compared with (the issue asks for at least 200).
CHECK_DRAWS = 200


def write_checks(
    ctx: StageContext,
    model: Any,
    reasons: list[Any],
    roles: tuple[dict[tuple[str, int], list[int]], dict[tuple[str, int], list[int]]],
    descriptions: pd.DataFrame,
    images: torch.Tensor,
    labels: torch.Tensor,
) -> dict[str, list[int]]:
    """Every claim checked on the test digits (``images``/``labels``), none of which it was
    derived from: class drivers and their inner channels against random removals, the weak and
    the reinforcing rows of each table (``roles``: both by ``(layer, outer channel)``), and
    conv1's line and edge descriptions on real strokes. Writes ``checks.csv``
    (one row per claim) and ``scorecard.csv`` (per kind); returns ``{kind: [hold, claims]}``."""
    from dissect.faithfulness import (
        check_reasoning,
        checks_table,
        reinforcing_row_check,
        scorecard,
        weak_rows_check,
    )
    from dissect.strokes import check_first_layer

    checks = check_reasoning(
        model, reasons, images, labels, draws=CHECK_DRAWS, seed=ctx.config.seed
    )
    weak, reinforcing = roles
    checks += [weak_rows_check(model, layer, o, rows, images)
               for (layer, o), rows in weak.items() if rows]  # fmt: skip
    found = [reinforcing_row_check(model, layer, o, j, images)
             for (layer, o), rows in reinforcing.items() for j in rows]  # fmt: skip
    checks += [c for c in found if c is not None]
    checks += check_first_layer(model, descriptions, images)
    # the claims that do not hold first: the report shows a table's top rows
    table = checks_table(checks).sort_values("holds", kind="stable")
    card = scorecard(checks)
    atomic_save(ctx.out / "checks.csv", lambda p: table.to_csv(p, index=False))
    atomic_save(ctx.out / "scorecard.csv", lambda p: card.to_csv(p, index=False))
    return {str(r.kind): [int(r.hold), int(r.claims)] for r in card.itertuples()}


def write_reasoning(
    ctx: StageContext, model: Any, meta: CheckpointMeta, descriptions: pd.DataFrame
) -> list[Any]:
    """Each class's reasoning in words, derived on the training digits (the test split checks
    it): ``reasoning.txt`` (a paragraph per class) and ``reasoning.csv``."""
    from dissect import steps
    from dissect.infra.checkpoints import load_checkpoint_data

    images, labels = load_checkpoint_data(meta, "train")
    return steps.write_reasoning(model, images, labels, ctx.out, descriptions=descriptions).reasons
