"""What one pipeline run is made of: a frozen, hashable description of its settings."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunConfig", "check_name", "PLAIN_NAME"]

#: A run name is a plain folder name: letters, digits, ``.``, ``_`` and ``-``, not starting
#: with a dot or a dash (it becomes runs/NAME/ and the report's title).
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


def check_name(name: object, option: str = "--name") -> str:
    """``name`` if it is a plain folder name (see :data:`PLAIN_NAME`), else one clear line."""
    from dissect.infra.errors import AuditError

    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise AuditError(
            f"{option} {name!r} is not a plain name: use letters, digits, '.', '_' and '-' "
            "(at most 100, not starting with '.' or '-'), e.g. default"
        )
    return name


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

    def validate(self) -> RunConfig:
        """Check every setting every stage will read, before the first stage starts: the name,
        numbers, widths, pruning targets against the widths, criteria against the pruning
        module's, the data set's files and the device. Raises :class:`AuditError` with one line
        naming the option and what to give instead; returns ``self``."""
        from dissect.infra.datasets import DATASETS, check_data
        from dissect.infra.errors import AuditError
        from dissect.infra.runtime import check_device

        check_name(self.name)
        for option, value, least in (
            ("--seed", self.seed, 0), ("--epochs", self.epochs, 1), ("--fc4", self.fc4, 1),
            ("--prune-iterations", self.prune_iterations, 1),
            ("--finetune-epochs", self.finetune_epochs, 1),
            ("--superstimulus-steps", self.superstimulus_steps, 1),
            ("audit_samples", self.audit_samples, 1),
        ):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise AuditError(f"{option} {value!r}: give a whole number of at least {least}")
        if self.fc4 < 10:
            raise AuditError(
                f"--fc4 {self.fc4}: HandNet's closed-form head needs fc4 at least as wide as the "
                "10 classes: give --fc4 10 or more"
            )
        widths, targets = tuple(self.widths), tuple(self.prune_targets)
        if len(widths) not in (2, 3) or not all(_positive(w) for w in widths):
            raise AuditError(
                f"--widths {_csv(widths)}: give 2 or 3 positive comma-separated numbers"
            )
        allowed = f"1 to {len(widths)} widths, each from 1 to the layer's width in --widths {_csv(widths)}"
        if not 1 <= len(targets) <= len(widths) or not all(_positive(t) for t in targets):
            raise AuditError(
                f"--prune-targets {_csv(targets)} does not fit --widths {_csv(widths)}: give {allowed}"
            )
        for k, (t, w) in enumerate(zip(targets, widths, strict=False), start=1):
            if t > w:
                raise AuditError(
                    f"--prune-targets {_csv(targets)}: conv{k} has {w} channels (--widths), so "
                    f"it cannot be pruned to {t}: give {allowed}"
                )
        self._validate_criteria()
        if self.dataset not in DATASETS:
            raise AuditError(
                f"unknown data set {self.dataset!r}: choose one of {', '.join(DATASETS)}"
            )
        check_data(self.dataset, self.data_dir)
        check_device(self.device)
        root = Path(self.runs_root)
        for folder in (root, self.run_dir):
            if folder.exists() and not folder.is_dir():
                raise AuditError(f"{str(folder)!r} is a file, not a folder: choose another --runs-root or --name")  # fmt: skip
        return self

    def _validate_criteria(self) -> None:
        from dissect.infra.errors import AuditError

        try:
            from simpleconvnet.criteria import CRITERIA
        except ImportError:  # the prune stage says it is unavailable
            return
        names = tuple(self.prune_criteria)
        unknown = [n for n in names if n not in CRITERIA]
        if not names or unknown or len(set(names)) != len(names):
            what = f"unknown {', '.join(map(repr, unknown))}" if unknown else "give each once"
            raise AuditError(
                f"--prune-criteria {','.join(map(str, names))!r}: {what}; choose from "
                f"{','.join(CRITERIA)}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["prune_targets"] = list(self.prune_targets)
        d["prune_criteria"] = list(self.prune_criteria)
        return d


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _csv(values: tuple) -> str:
    return ",".join(str(v) for v in values)
