"""How to prune: :class:`PruneConfig`, shared by the pruning loop (:mod:`simpleconvnet.prune`)
and the choice of channels (:mod:`simpleconvnet.selection`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dissect.infra.errors import AuditError
from simpleconvnet.criteria import CRITERIA

__all__ = ["PruneConfig", "DEFAULT_WEIGHTS"]

#: Every criterion of :data:`simpleconvnet.criteria.CRITERIA` with the same weight.
DEFAULT_WEIGHTS = {"variation": 1.0, "structure": 1.0, "superstimulus": 1.0, "selectivity": 1.0}


@dataclass(frozen=True)
class PruneConfig:
    iterations: int = 7
    # conv3's width applies while it is kept; the redundant-layer test may then drop it
    targets: tuple[int, ...] = (8, 16, 16)
    budget: float = 0.5  # accuracy points the pruned net may lose against the unpruned one
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    epochs: int = 3
    final_epochs: int = 40
    lr: float = 1e-3
    seed: int = 0
    drop_redundant: bool = True
    score_images: int = 1000
    superstimulus_steps: int = 128

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(CRITERIA)
        if unknown:
            raise AuditError(f"unknown criteria {sorted(unknown)}: use {', '.join(CRITERIA)}")
        if self.iterations < 1 or min(self.targets, default=1) < 1:
            raise AuditError("--iterations and every --targets width must be at least 1")
