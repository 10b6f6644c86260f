"""The networks the report compares: their keys, titles and the stages that make them, and how
a stage finds an upstream network's checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reports.pipeline import StageContext

if TYPE_CHECKING:
    from dissect.infra.checkpoints import CheckpointMeta
    from simpleconvnet.model import SimpleConvNet

__all__ = ["Network", "NETWORKS", "EXPLAINED", "CHECKED", "checkpoint_of", "load_network"]


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

#: Networks narrow enough to show every outer channel (the unpruned net would need ~200 figures).
EXPLAINED = ("pruned", "handnet-built", "handnet-constrained", "handnet-free")
#: Networks whose explanations' claims are all checked on the test digits (the checks cost
#: about a minute each on 2 cores): the two the study compares as they are made.
CHECKED = ("pruned", "handnet-built")


def checkpoint_of(ctx: StageContext, stage: str) -> Path:
    """The checkpoint folder an upstream producer stage names in its summary (relative to the
    run folder, or absolute)."""
    return ctx.run_dir / ctx.summary(stage)["checkpoint"]


def load_network(ctx: StageContext, net: Network) -> tuple[SimpleConvNet, CheckpointMeta]:
    """The checkpoint of ``net`` on the run's device: every network the report compares is a
    SimpleConvNet (HandNet extends it)."""
    from simpleconvnet.checkpoint import load_model
    from simpleconvnet.model import SimpleConvNet

    return load_model(checkpoint_of(ctx, net.stage), SimpleConvNet, map_location=ctx.device)
