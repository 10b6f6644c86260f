"""The pipeline's stage graph: which stage reads which, the settings each hashes, and the
report stage at the end. The stage bodies live in :mod:`reports.stage_models` (networks made)
and :mod:`reports.stage_analysis` (networks looked at)."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import partial
from pathlib import Path
from typing import Any

from handnet.finetune import FINETUNE_LR
from reports.live import LIVE_NETWORKS, run_live
from reports.networks import EXPLAINED, NETWORKS, Network
from reports.pipeline import Stage, StageContext
from reports.stage_analysis import run_dissect, run_explain, run_measure, run_superstimuli
from reports.stage_models import (
    DATA_KEYS,
    SNAPSHOT_EVERY,
    run_handnet_build,
    run_handnet_finetune,
    run_prune,
    run_train,
)

__all__ = ["build_stages", "code_digest"]


def missing_module(*modules: str) -> str | None:
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return f"module {name} is not installed yet"
        except ModuleNotFoundError:
            return f"module {name} is not installed yet"
    return None


def code_digest() -> dict[str, str]:
    """The report depends on its own templates and code: a change there rebuilds it."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *root.glob("templates/*"), *root.glob("static/*")]):
        h.update(path.name.encode() + path.read_bytes())
    return {"reports_code": h.hexdigest()}


def live_digest() -> dict[str, str]:
    """The live stage's weights export depends on its own code."""
    return {
        "live_code": hashlib.sha256((Path(__file__).parent / "live.py").read_bytes()).hexdigest()
    }


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
    live = [n for n in NETWORKS if n.key in LIVE_NETWORKS and n.stage in producers]
    stages.append(
        Stage(
            "live", run_live, deps=tuple(d for n in live for d in (n.stage, f"dissect-{n.key}")),
            needs_deps=False, every_rank=False, extra_inputs=live_digest,
        )
    )  # fmt: skip
    stages.append(
        Stage(
            "report", run_report, deps=tuple(s.name for s in stages),
            keys=("name", "description"), extra_inputs=code_digest, needs_deps=False,
            every_rank=False,
        )
    )  # fmt: skip
    return stages
