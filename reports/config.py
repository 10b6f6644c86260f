"""What one pipeline run is made of: a frozen, hashable description of its settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunConfig"]


@dataclass(frozen=True)
class RunConfig:
    """Settings of ``reports run``. The defaults are the ones ``make report`` uses.

    Each stage hashes only the fields it reads (see :mod:`reports.stages`), so changing,
    say, ``superstimulus_steps`` re-runs the superstimuli and the report, nothing else.
    """

    name: str = "default"
    description: str = ""
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    seed: int = 0
    epochs: int = 15
    widths: tuple[int, ...] = (32, 64, 128)
    fc4: int = 128
    prune_iterations: int = 7
    prune_targets: tuple[int, ...] = (8, 16, 16)
    prune_criteria: tuple[str, ...] = ("variation", "structure", "superstimulus", "selectivity")
    finetune_epochs: int = 40
    superstimulus_steps: int = 192
    audit_samples: int = 4
    runs_root: str = "runs"
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_root) / self.name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["prune_targets"] = list(self.prune_targets)
        d["prune_criteria"] = list(self.prune_criteria)
        return d
