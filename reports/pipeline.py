"""The cached stage runner behind ``reports run``.

Every stage writes under ``runs/NAME/<stage>/`` and finishes by writing ``stage.json``:
the hash of its inputs (the config fields it reads and the output digests of the stages it
depends on), the digest of what it wrote, its time and a small summary. A later run skips a
stage whose recorded inputs hash equals the new one, and says so; ``force`` re-runs all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dissect.infra import distributed as dist
from dissect.infra.atomic import atomic_write_text
from dissect.infra.errors import AuditError
from dissect.infra.runtime import resolve_device
from reports.config import RunConfig

__all__ = [
    "Stage",
    "StageContext",
    "StageOutcome",
    "STAGE_FILE",
    "RUN_FILE",
    "run_pipeline",
    "read_record",
    "digest_folder",
    "inputs_hash",
]

STAGE_FILE = "stage.json"
RUN_FILE = "run.json"


@dataclass
class StageContext:
    """What a stage's function gets: the run's settings and where to read and write."""

    config: RunConfig
    run_dir: Path
    out: Path
    quiet: bool
    device: torch.device

    def record(self, stage: str) -> dict[str, Any]:
        """The finished ``stage.json`` of an upstream stage (``{}`` when it has not run)."""
        return read_record(self.run_dir / stage) or {}

    def summary(self, stage: str) -> dict[str, Any]:
        return self.record(stage).get("summary", {})


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline. ``run(ctx)`` writes into ``ctx.out`` and returns a summary.

    ``keys``: the :class:`RunConfig` fields it reads. ``unavailable()`` returns why the stage
    cannot run on this install (a package not there), or ``None``; a stage whose upstream
    stage is unavailable is unavailable too, unless ``needs_deps`` is False.
    """

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    deps: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    unavailable: Callable[[], str | None] = field(default=lambda: None)
    extra_inputs: Callable[[], dict[str, Any]] = field(default=dict)
    needs_deps: bool = True  # False: runs with whichever upstream stages are available
    every_rank: bool = True  # False: under torchrun only rank 0 runs it (no collectives inside)


@dataclass
class StageOutcome:
    name: str
    status: str  # "ran", "reused" or "unavailable"
    seconds: float
    note: str = ""


def read_record(folder: Path, finished: bool = True) -> dict[str, Any] | None:
    """A stage folder's ``stage.json`` when the stage finished (or, with ``finished=False``,
    whatever it holds, e.g. why the stage could not run), else ``None``."""
    path = folder / STAGE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("finished") or not finished else None


def digest_folder(folder: Path) -> str:
    """sha256 over the relative names and bytes of every file below ``folder`` but stage.json."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == STAGE_FILE or path.name.startswith("."):
            continue
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def inputs_hash(stage: Stage, config: RunConfig, digests: dict[str, str]) -> str:
    settings = config.to_dict()
    payload = {
        "stage": stage.name,
        "config": {k: settings[k] for k in stage.keys},
        "upstream": {d: digests.get(d, "absent") for d in stage.deps},
        "extra": stage.extra_inputs(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _say(quiet: bool, text: str) -> None:
    if not quiet and dist.is_main():
        print(f"[reports] {text}", file=sys.stderr, flush=True)


def _run_stage(stage: Stage, ctx: StageContext, key: str) -> tuple[dict[str, Any], float]:
    """Run one stage. Under torchrun every rank runs it (its loops are split across ranks), but
    only rank 0 writes into the run folder: the others write into a scratch folder that is
    thrown away, and take rank 0's record."""
    scratch = (
        None
        if dist.is_main()
        else Path(tempfile.mkdtemp(prefix=f"{stage.name}-rank{dist.rank()}-"))
    )
    if scratch is None:
        # start from an empty folder: nothing a run with other inputs left may leak into this one
        shutil.rmtree(ctx.out, ignore_errors=True)
        ctx.out.mkdir(parents=True)
    else:
        ctx = dataclasses.replace(ctx, out=scratch)
    try:
        record, seconds = (
            _execute(stage, ctx, key) if scratch is None or stage.every_rank else ({}, 0.0)
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    dist.barrier()
    return dist.broadcast_object(record), seconds


def _execute(stage: Stage, ctx: StageContext, key: str) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    summary = stage.run(ctx)
    seconds = time.perf_counter() - t0
    record = {
        "stage": stage.name,
        "finished": True,
        "inputs_hash": key,
        "outputs_digest": digest_folder(ctx.out),
        "seconds": round(seconds, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": summary,
    }
    if dist.is_main():
        atomic_write_text(ctx.out / STAGE_FILE, json.dumps(record, indent=2, default=str))
    return record, seconds


def run_pipeline(
    stages: list[Stage], config: RunConfig, *, force: bool = False, quiet: bool = False
) -> list[StageOutcome]:
    """Run ``stages`` in order, reusing each one whose inputs did not change."""
    from dissect.infra.runtime import progress

    run_dir = config.run_dir
    device = dist.init_from_env(resolve_device(config.device))
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / RUN_FILE, json.dumps(config.to_dict(), indent=2))
    dist.barrier()
    digests: dict[str, str] = {}
    outcomes: list[StageOutcome] = []
    bar = progress(stages, quiet=quiet or not dist.is_main(), desc="pipeline", total=len(stages))
    for i, stage in enumerate(bar):
        if hasattr(bar, "set_description"):
            bar.set_description(f"pipeline [{i + 1}/{len(stages)}] {stage.name}")
        outcomes.append(_one(stage, config, run_dir, device, digests, force, quiet))
    return outcomes


def _one(stage, config, run_dir, device, digests, force, quiet) -> StageOutcome:
    reason = stage.unavailable()
    lacking = [d for d in stage.deps if digests.get(d) == "unavailable"]
    if not reason and lacking and stage.needs_deps:
        reason = f"needs stage {lacking[0]}, which is not available"
    if reason:
        note = {"stage": stage.name, "finished": False, "unavailable": reason}
        if dist.is_main():
            atomic_write_text(run_dir / stage.name / STAGE_FILE, json.dumps(note, indent=2))
        digests[stage.name] = "unavailable"
        _say(quiet, f"{stage.name}: not available ({reason})")
        return StageOutcome(stage.name, "unavailable", 0.0, reason)
    key = inputs_hash(stage, config, digests)
    out = run_dir / stage.name
    previous = read_record(out)
    if not force and previous and previous.get("inputs_hash") == key:
        digests[stage.name] = previous["outputs_digest"]
        _say(
            quiet, f"{stage.name}: inputs unchanged, reused ({previous['seconds']:.1f} s when run)"
        )
        return StageOutcome(stage.name, "reused", float(previous["seconds"]))
    _say(quiet, f"{stage.name}: running")
    ctx = StageContext(config, run_dir, out, quiet, device)
    try:
        record, seconds = _run_stage(stage, ctx, key)
    except AuditError as exc:
        raise AuditError(f"stage {stage.name} failed: {exc}") from exc
    digests[stage.name] = record["outputs_digest"]
    _say(quiet, f"{stage.name}: done in {seconds:.1f} s")
    return StageOutcome(stage.name, "ran", seconds)
