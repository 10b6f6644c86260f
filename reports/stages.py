"""The pipeline's stages: each a small function calling the other packages' public API.

A stage reads its upstream stages' folders, writes into ``ctx.out`` and returns a summary
(stored in its ``stage.json``). Producer stages name their checkpoint in the summary
(``"checkpoint": "train/last"``, relative to the run folder), so later stages need not know
each package's folder layout. The last epoch's weights are used, never the epoch that scored best
on the test set (that would tune on the test set and flatter every figure).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from dissect.infra.atomic import atomic_save, atomic_write_bytes, atomic_write_text
from reports.config import RunConfig
from reports.pipeline import Stage, StageContext

if TYPE_CHECKING:
    from simpleconvnet.model import SimpleConvNet

__all__ = ["Network", "NETWORKS", "build_stages", "load_data", "checkpoint_of", "code_digest"]


@dataclass(frozen=True)
class Network:
    """A network the report compares: its key, its title and the stage that makes it."""

    key: str
    title: str
    stage: str
    family: str


NETWORKS: tuple[Network, ...] = (
    Network("simpleconvnet", "SimpleConvNet (unpruned)", "train", "SimpleConvNet"),
    Network("pruned", "SimpleConvNet (pruned)", "prune", "SimpleConvNet"),
    Network("handnet-built", "HandNet (hand-built)", "handnet-build", "HandNet"),
    Network("handnet-constrained", "HandNet (constrained fine-tune)", "handnet-constrained", "HandNet"),
    Network("handnet-free", "HandNet (free fine-tune)", "handnet-free", "HandNet"),
)  # fmt: skip

DATA_KEYS = ("dataset", "data_dir", "seed")
#: Steps between first-layer snapshots: about 40 frames for the 15-epoch default animation.
SNAPSHOT_EVERY = 25


def load_data(
    config: RunConfig,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    from dissect.infra.datasets import load_split

    return (
        load_split(config.dataset, "train", config.data_dir),
        load_split(config.dataset, "test", config.data_dir),
    )


def data_meta(config: RunConfig) -> dict[str, Any]:
    return {"name": config.dataset, "data_dir": config.data_dir}


def checkpoint_of(ctx: StageContext, stage: str) -> Path:
    """The checkpoint folder an upstream producer stage names in its summary."""
    return ctx.run_dir / ctx.summary(stage)["checkpoint"]


def load_network(ctx: StageContext, net: Network) -> tuple[SimpleConvNet, dict[str, Any]]:
    """The checkpoint of ``net`` on the run's device: every network the report compares is a
    SimpleConvNet (HandNet extends it)."""
    from simpleconvnet.checkpoint import load_model
    from simpleconvnet.model import SimpleConvNet

    return load_model(checkpoint_of(ctx, net.stage), SimpleConvNet, map_location=ctx.device)


def missing_module(*modules: str) -> str | None:
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return f"module {name} is not installed yet"
        except ModuleNotFoundError:
            return f"module {name} is not installed yet"
    return None


# -- SimpleConvNet -----------------------------------------------------------------------------
def run_train(ctx: StageContext) -> dict[str, Any]:
    from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
    from simpleconvnet.train import TrainConfig, fit

    c = ctx.config
    train, test = load_data(c)
    model = SimpleConvNet(SimpleConvNetConfig(convs=tuple(c.widths), fc4=c.fc4))
    init_weights(model, torch.Generator().manual_seed(c.seed))
    model.to(ctx.device)
    meta = {"kind": "SimpleConvNet", "data": data_meta(c), "world_size": 1}
    result = fit(
        model, train, test, TrainConfig(epochs=c.epochs, seed=c.seed, snapshot_every=SNAPSHOT_EVERY), out_dir=ctx.out,
        metadata=meta, quiet=ctx.quiet, desc="train",
    )  # fmt: skip
    return {
        "checkpoint": f"{ctx.out.name}/last",
        "accuracy": result.final.accuracy,
        "best_accuracy": result.best_accuracy,
        "train_seconds": result.seconds,
    }


def run_prune(ctx: StageContext) -> dict[str, Any]:
    """Prune the trained net with the package's defaults (fewer epochs for a quick run)."""
    from simpleconvnet.checkpoint import load_model
    from simpleconvnet.model import SimpleConvNet
    from simpleconvnet.prune import PruneConfig, prune

    c = ctx.config
    model, meta = load_model(checkpoint_of(ctx, "train"), SimpleConvNet, map_location=ctx.device)
    d = PruneConfig()

    def epochs(n: int) -> int:  # a quick run (fewer --epochs than the default) retrains less
        return n if c.epochs >= RunConfig().epochs else min(n, c.epochs)

    config = PruneConfig(
        iterations=c.prune_iterations, targets=tuple(c.prune_targets), seed=c.seed,
        weights={name: 1.0 for name in c.prune_criteria},
        epochs=epochs(d.epochs), final_epochs=epochs(d.final_epochs),
        superstimulus_steps=min(d.superstimulus_steps, c.superstimulus_steps),
    )  # fmt: skip
    train, test = load_data(c)
    before = sum(p.numel() for p in model.parameters())
    result = prune(
        model, train, test, config, out_dir=ctx.out, quiet=ctx.quiet,
        metadata={"kind": "SimpleConvNet", "data": meta["data"]},
    )  # fmt: skip
    after = sum(p.numel() for p in result.model.parameters())
    return {
        "checkpoint": f"{ctx.out.name}/final",
        "accuracy": float(result.history["accuracy_after_retraining"].iloc[-1]),
        "parameters_kept": after / before,
        "widths": list(result.model.config.convs),
        "redundancy": {
            "redundant": bool(result.redundancy.get("dropped")),
            "evidence": str(result.redundancy.get("reason", "")),
            "mean_best_correlation": result.redundancy["layers"]
            .get("conv3", {})
            .get("mean_best_correlation"),
        },
    }


# -- HandNet ------------------------------------------------------------------------------------
def run_handnet_build(ctx: StageContext) -> dict[str, Any]:
    """HandNet of the pruned net's widths (conv3 only when pruning kept it; at most the default
    bank's 8 filters and 16 rules): analytic conv layers, closed-form readout."""
    from dissect.infra.checkpoints import save_model
    from handnet import HandNet, default_config, fit_head

    c = ctx.config
    train, _ = load_data(c)
    pruned = ctx.summary("prune").get("widths") or list(c.prune_targets)[:2]
    widths = [min(pruned[0], 8), min(pruned[1], 16)]
    widths += [min(w, widths[1]) for w in pruned[2:3]]
    model = HandNet(default_config(tuple(widths), c.fc4)).to(ctx.device)
    fit = fit_head(model, train[0].to(ctx.device), train[1].to(ctx.device))
    meta = {"kind": "HandNet", "data": data_meta(c), "mode": "hand-built"}
    save_model(ctx.out / "model", model, meta)
    return {"checkpoint": f"{ctx.out.name}/model", "head": _plain(fit), "widths": widths}


#: The peak learning rate of HandNet fine-tuning (as `handnet finetune` and bench_handnet).
FINETUNE_LR = 3e-3


def run_handnet_finetune(ctx: StageContext, mode: str) -> dict[str, Any]:
    """Fine-tune the hand-built HandNet (``constrained`` or ``free``); how far filters drift."""
    from handnet.finetune import filter_drift, finetune
    from handnet.model import HandNet
    from simpleconvnet.checkpoint import load_model
    from simpleconvnet.train import TrainConfig

    c = ctx.config
    built = checkpoint_of(ctx, "handnet-build")
    model, meta = load_model(built, HandNet, map_location=ctx.device)
    before, _ = load_model(built, HandNet, map_location=ctx.device)
    train, test = load_data(c)
    config = TrainConfig(
        epochs=c.finetune_epochs, lr=FINETUNE_LR, seed=c.seed, snapshot_every=SNAPSHOT_EVERY
    )
    result = finetune(
        model, train, test, mode, config, out_dir=ctx.out, metadata={"data": meta["data"]},
        quiet=ctx.quiet,
    )  # fmt: skip
    drift = filter_drift(before, result.model)
    atomic_save(ctx.out / "drift.csv", lambda p: drift.to_csv(p, index=False))
    return {
        "checkpoint": f"{ctx.out.name}/last",
        "accuracy": result.train.final.accuracy,
        "trainable_parameters": result.trainable,
        "train_seconds": result.train.seconds,
    }


def _plain(fit: object) -> dict[str, Any]:
    """The scalar fields of a result dataclass, for the stage summary."""
    from dataclasses import asdict, is_dataclass

    fields = asdict(fit) if is_dataclass(fit) and not isinstance(fit, type) else {}
    return {k: v for k, v in fields.items() if isinstance(v, int | float | str | bool)}


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
    return summary


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
    """Channel descriptions (probes), conv1 Gabor fits and conv1 maps of the line probes."""
    from dissect.activations import activation_maps
    from dissect.gabor import gabor_fit
    from dissect.infra.checkpoints import load_checkpoint
    from dissect.labels import describe_model
    from dissect.probes import ORIENTATION_OF
    from dissect.specimen import specimen_of
    from reports.figures import maps_table

    model, meta = load_checkpoint(checkpoint_of(ctx, net.stage), map_location=ctx.device)
    labels = describe_model(model)
    atomic_save(ctx.out / "labels.csv", lambda p: labels.to_csv(p, index=False))
    first = labels[labels["layer"] == "conv1"].reset_index(drop=True)
    conv1 = specimen_of(model).conv("conv1")
    fits = [gabor_fit(w[0].cpu().numpy()) for w in conv1.weight.detach()]
    gabor = pd.DataFrame(
        [
            {"channel": c + 1, "description": first["description"][c], **f.as_dict()}
            for c, f in enumerate(fits)
        ]
    )  # noqa: E501
    atomic_save(ctx.out / "gabor.csv", lambda p: gabor.to_csv(p, index=False))
    images, names = line_probes()
    maps = activation_maps(model, "conv1", images.to(ctx.device)).cpu().numpy()
    png = maps_table(images[:, 0].numpy(), maps, names)
    atomic_save(ctx.out / "probes.png", lambda p: p.write_bytes(png))
    write_audits(ctx, model, meta)
    return {
        "confident_share": float(labels["confident"].mean()),
        "gabor_r2": float(gabor["r2"].mean()),
        "orientations": [f.orientation for f in fits if not f.noise_like],
        "described_orientations": sorted(
            {
                ORIENTATION_OF[d]
                for d, ok in zip(first["description"], first["confident"], strict=True)
                if ok and d in ORIENTATION_OF
            }
        ),  # fmt: skip
    }


def write_audits(ctx: StageContext, model: Any, meta: dict[str, Any]) -> None:
    """The ``dissect audit`` explanation of a few test digits: the first ones and the most
    confident mistakes (half each), with their images, as ``audit.json``."""
    from dissect.audit import explain_prediction
    from dissect.infra.checkpoints import load_checkpoint_data
    from dissect.mistakes import confident_mistakes
    from reports.figures import digit_png

    images, labels = load_checkpoint_data(meta, "test")
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
    from dissect.superstimuli import class_superstimuli, layer_superstimuli
    from reports.figures import image_grid

    c = ctx.config
    model, _ = load_network(ctx, net)
    found = [
        layer_superstimuli(model, n, steps=c.superstimulus_steps, seed=c.seed)
        for n in model.conv_names
    ]  # noqa: E501
    found.append(class_superstimuli(model, steps=c.superstimulus_steps, seed=c.seed))
    rows = []
    for i, s in enumerate(found):
        name = s.layer if i < len(model.conv_names) else "classes"
        png = image_grid(s.images, columns=10 if name == "classes" else 16)
        atomic_write_bytes(ctx.out / f"{name}.png", png)
        rows += [
            {"layer": name, "unit": u + 1, "activation": float(a), "optimised": used}
            for u, (a, used) in enumerate(zip(s.activation, s.used, strict=True))
        ]  # noqa: E501
    table = pd.DataFrame(rows)
    atomic_save(ctx.out / "activations.csv", lambda p: table.to_csv(p, index=False))
    return {"units": len(rows), "steps": c.superstimulus_steps}


#: Networks narrow enough to show every outer channel (the unpruned net would need ~200 figures).
EXPLAINED = ("pruned", "handnet-built", "handnet-constrained", "handnet-free")


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
    driving each class, and ablations checked against the tables' roles."""
    from dissect.ablation import ablation_table, agreement
    from dissect.head import class_drivers
    from dissect.infra.checkpoints import load_checkpoint_data
    from dissect.infra.datasets import stratified_sample

    model, meta = load_network(ctx, net)
    images, labels = load_checkpoint_data(meta, "test")
    reference = images[stratified_sample(labels, 20, seed=0)]  # 200 digits, 20 of each class
    labels_table = pd.read_csv(ctx.run_dir / f"dissect-{net.key}" / "labels.csv")
    roles, errors = [], []
    for i, layer in enumerate(model.conv_names[1:], start=1):
        inner = labels_table[labels_table["layer"] == model.conv_names[i - 1]][
            "description"
        ].tolist()  # noqa: E501
        for o in range(getattr(model, layer).weight.shape[0]):
            png, table, error = dissect_channel(
                model, layer, o, images[sample : sample + 1], reference, inner
            )  # noqa: E501
            errors.append(error)
            stem = ctx.out / "channels" / f"{layer}-{o + 1:02d}"
            atomic_write_bytes(stem.with_suffix(".png"), png)
            atomic_save(stem.with_suffix(".csv"), partial(table.to_csv, index=False))
            roles += [
                {"layer": model.conv_names[i - 1], "channel": int(j), "role": r}
                for j, r in zip(table["j"], table["role"], strict=True)
                if j != "bias"
            ]  # noqa: E501
    drivers = class_drivers(model, images, labels)
    atomic_save(
        ctx.out / "head.csv", lambda p: drivers[drivers["rank"] <= 3].to_csv(p, index=False)
    )  # noqa: E501
    ablations = ablation_table(model, images, labels)
    atomic_save(ctx.out / "ablation.csv", lambda p: ablations.to_csv(p, index=False))
    role = (
        pd.DataFrame(roles)
        .groupby(["layer", "channel"])["role"]
        .agg(lambda r: r.mode()[0])
        .reset_index()
    )  # noqa: E501
    agree = agreement(ablations, role, drivers)
    atomic_save(ctx.out / "agreement.csv", lambda p: agree.to_csv(p, index=False))
    write_reasoning(ctx, model, meta, labels_table)
    return {
        "ablation_agreement": float(agree["agrees"].mean()) if len(agree) else None,
        "decomposition_error": max(errors, default=None),
    }


def write_reasoning(
    ctx: StageContext, model: Any, meta: dict[str, Any], descriptions: pd.DataFrame
) -> None:
    """Each class's reasoning in words, derived on the training digits (the test split checks
    it): ``reasoning.txt`` (a paragraph per class) and ``reasoning.csv``."""
    from dissect.explain import explain_classes, reasoning_table
    from dissect.infra.checkpoints import load_checkpoint_data

    images, labels = load_checkpoint_data(meta, "train")
    reasons = explain_classes(model, images, labels, descriptions=descriptions)
    atomic_write_text(ctx.out / "reasoning.txt", "\n\n".join(r.paragraph() for r in reasons) + "\n")
    table = reasoning_table(reasons)
    atomic_save(ctx.out / "reasoning.csv", lambda p: table.to_csv(p, index=False))


def code_digest() -> dict[str, str]:
    """The report depends on its own templates and code: a change there rebuilds it."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *root.glob("templates/*"), *root.glob("static/*")]):
        h.update(path.name.encode() + path.read_bytes())
    return {"reports_code": h.hexdigest()}


def run_report(ctx: StageContext) -> dict[str, Any]:
    from reports.build import build_report

    paths = build_report(ctx.run_dir, ctx.out, quiet=ctx.quiet, warn=False)
    return {name: str(p.relative_to(ctx.run_dir)) for name, p in paths.items()}


def _measure_stage(net: Network) -> Stage:
    return Stage(f"measure-{net.key}", lambda ctx: run_measure(ctx, net), deps=(net.stage,))


def build_stages() -> list[Stage]:
    """Every stage, in the order they run."""
    stages = [
        Stage(
            "train", run_train, keys=(*DATA_KEYS, "epochs", "widths", "fc4"),
            extra_inputs=lambda: {"snapshot_every": SNAPSHOT_EVERY},
        )
    ]  # fmt: skip
    stages.append(
        Stage(
            "prune", run_prune, deps=("train",),
            keys=(*DATA_KEYS, "epochs", "prune_iterations", "prune_targets", "prune_criteria"),
            unavailable=lambda: missing_module("simpleconvnet.prune", "dissect.gabor", "dissect.superstimuli"),
        )
    )  # fmt: skip
    stages.append(
        Stage(
            "handnet-build", run_handnet_build, deps=("prune",),
            keys=(*DATA_KEYS, "prune_targets", "fc4"), needs_deps=False,
            unavailable=lambda: missing_module("handnet.model", "handnet.head"),
        )
    )  # fmt: skip
    stages += [
        Stage(
            f"handnet-{mode}", partial(run_handnet_finetune, mode=mode),
            deps=("handnet-build",), keys=(*DATA_KEYS, "finetune_epochs"),
            extra_inputs=lambda: {"lr": FINETUNE_LR, "snapshot_every": SNAPSHOT_EVERY},
            unavailable=lambda: missing_module("handnet.finetune"),
        )
        for mode in ("constrained", "free")
    ]  # fmt: skip
    producers = {s.name for s in stages}
    stages += [_measure_stage(n) for n in NETWORKS if n.stage in producers]
    stages += [
        Stage(
            f"dissect-{n.key}", partial(run_dissect, net=n), deps=(n.stage,),
            unavailable=lambda: missing_module("dissect.labels", "dissect.gabor", "dissect.probes"),
        )
        for n in NETWORKS
        if n.stage in producers
    ]  # fmt: skip
    stages += [
        Stage(
            f"explain-{n.key}", partial(run_explain, net=n), deps=(n.stage, f"dissect-{n.key}"),
            unavailable=lambda: missing_module("dissect.contributions", "dissect.head", "dissect.ablation"),
        )
        for n in NETWORKS
        if n.stage in producers and n.key in EXPLAINED
    ]  # fmt: skip
    stages += [
        Stage(
            f"superstimuli-{n.key}", partial(run_superstimuli, net=n), deps=(n.stage,),
            keys=("seed", "superstimulus_steps"),
            unavailable=lambda: missing_module("dissect.superstimuli"),
        )
        for n in NETWORKS
        if n.stage in producers
    ]  # fmt: skip
    stages.append(
        Stage(
            "report", run_report, deps=tuple(s.name for s in stages),
            keys=("name", "description"), extra_inputs=code_digest, needs_deps=False,
            every_rank=False,
        )
    )  # fmt: skip
    return stages
