"""How to prune: :class:`PruneConfig`, shared by the pruning loop (:mod:`simpleconvnet.prune`)
and the choice of channels (:mod:`simpleconvnet.selection`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dissect.infra.errors import AuditError
from simpleconvnet.criteria import CRITERIA

__all__ = ["PruneConfig", "DEFAULT_WEIGHTS"]

#: Every criterion of :data:`simpleconvnet.criteria.CRITERIA` with the same weight.
DEFAULT_WEIGHTS = {"variation": 1.0, "structure": 1.0, "superstimulus": 1.0, "selectivity": 1.0}


@dataclass(frozen=True)
class PruneConfig:
    """How to prune. Every decision is taken on the validation split: ``budget`` compares the
    net without conv3 with the unpruned one there, and each retraining (after a cut: at most
    ``epochs``) stops as soon as validation accuracy is back within ``tolerance`` points of
    what it was before the cut. The retraining after the last cut and that of the net without
    conv3 run all ``final_epochs``: stopped early they end at a high learning rate, and the
    net they make is the pruned net reported."""

    iterations: int = 7
    # conv3's width applies while it is kept; the redundant-layer test may then drop it
    targets: tuple[int, ...] = (8, 16, 16)
    budget: float = 0.5  # accuracy points the pruned net may lose against the unpruned one
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    epochs: int = 3  # the cap of each retraining but the last
    final_epochs: int = 40  # the cap of the last retraining and of the net without conv3
    #: accuracy points below its pre-cut validation accuracy at which a retraining stops
    tolerance: float = 0.2
    lr: float = 1e-3
    seed: int = 0
    drop_redundant: bool = True
    score_images: int = 1000
    superstimulus_steps: int = 128
    #: the data set the net was trained on: each retraining augments as its recipe does
    dataset: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(CRITERIA)
        if unknown:
            raise AuditError(f"unknown criteria {sorted(unknown)}: use {', '.join(CRITERIA)}")
        if self.iterations < 1 or min(self.targets, default=1) < 1:
            raise AuditError("--iterations and every --targets width must be at least 1")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise AuditError(f"--tolerance must be a number of 0 or more, not {self.tolerance}")
