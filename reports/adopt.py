"""A report from runs a person made with the commands: ``reports build --train runs/scn
--pruned runs/scn-pruned --handnet runs/hand ...``.

Each network given takes the place of the pipeline stage that would have made it: the folder
the command wrote is copied into the run folder as that stage's output, and its summary is read
from the checkpoint's metadata. The stages that look at networks (measurements, dissections,
explanations, superstimuli) and the report then run exactly as under ``reports run``, cached the
same way. A network not given leaves its stage unavailable, with the command that makes it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dissect.infra.checkpoints import META_FILE, CheckpointMeta, read_metadata
from dissect.infra.errors import AuditError
from reports.config import RunConfig
from reports.pipeline import Stage, StageContext, digest_folder
from reports.stages import build_stages

__all__ = ["ROLES", "Role", "Adopted", "find_runs", "check_together", "adopted_config", "adopted_stages"]  # fmt: skip


@dataclass(frozen=True)
class Role:
    """A network ``reports build`` can take: its option, the stage it replaces, what its
    checkpoint must be, and the command that makes it."""

    option: str
    stage: str
    kind: str
    modes: tuple[str, ...]
    folder: str  # the checkpoint inside the command's --out folder
    command: str


ROLES: tuple[Role, ...] = (
    Role("train", "train", "SimpleConvNet", ("trained", ""), "last",
         "simpleconvnet train --out runs/scn"),
    Role("pruned", "prune", "SimpleConvNet", ("pruned",), "final",
         "simpleconvnet prune runs/scn/last --out runs/scn-pruned"),
    Role("handnet", "handnet-build", "HandNet", ("hand-built",), ".",
         "handnet build --out runs/hand"),
    Role("constrained", "handnet-constrained", "HandNet", ("constrained",), "last",
         "handnet finetune runs/hand --mode constrained --out runs/hand-constrained"),
    Role("free", "handnet-free", "HandNet", ("free",), "last",
         "handnet finetune runs/hand --mode free --out runs/hand-free"),
)  # fmt: skip


@dataclass(frozen=True)
class Adopted:
    """A network a person made: the folder to copy, the checkpoint inside it, its metadata."""

    role: Role
    source: Path
    checkpoint: Path
    meta: CheckpointMeta


def _locate(role: Role, given: Path) -> Adopted:
    """The checkpoint ``given`` names: the checkpoint folder itself, or the command's --out
    folder holding it (``last/``, ``final/``)."""
    if not given.exists():
        raise AuditError(f"--{role.option} {given}: no such folder; make it with `{role.command}`")
    if (given / META_FILE).is_file():
        checkpoint = given
        standalone = not (given.name in ("last", "best", "final") or given.name.startswith("iter_"))
        source = given if standalone else given.parent
    elif (given / role.folder / META_FILE).is_file():
        source, checkpoint = given, given / role.folder
    else:
        raise AuditError(
            f"--{role.option} {given}: neither a checkpoint nor a folder holding "
            f"{role.folder}/{META_FILE}; make one with `{role.command}`"
        )
    meta = read_metadata(checkpoint)
    if meta.kind and meta.kind != role.kind:
        raise AuditError(f"--{role.option} {given} holds a {meta.kind}, not a {role.kind}")
    mode = meta.mode or ("pruned" if "pruning_history" in meta.extra else "")
    if mode not in role.modes and meta.version > 1:
        raise AuditError(
            f"--{role.option} {given} is a {mode or 'unlabelled'} checkpoint, not "
            f"{' or '.join(m for m in role.modes if m)}: give the folder `{role.command}` wrote"
        )
    return Adopted(role, source.resolve(), checkpoint.resolve(), meta)


def find_runs(given: dict[str, str | None]) -> dict[str, Adopted]:
    """The networks given by option name (``train``, ``pruned``...), located and read."""
    by_option = {r.option: r for r in ROLES}
    return {k: _locate(by_option[k], Path(v)) for k, v in given.items() if v}


def _same(a: Path | str | None, b: Path) -> bool:
    if a is None:
        return False
    p = Path(a)
    return p.exists() and (p.resolve() == b or p.resolve() == b.parent)


def _folder(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def check_together(runs: dict[str, Adopted]) -> None:
    """The networks belong together: one data set (and folder), the pruned net made from the
    given training run, the fine-tuned HandNets from the given hand-built one."""
    if not runs:
        raise AuditError("give at least --train (or a run folder made by `reports run`)")
    data = {
        k: (a.meta.data.get("name"), _folder(a.meta.data.get("data_dir"))) for k, a in runs.items()
    }
    if len(set(data.values())) > 1:
        which = ", ".join(f"--{k}: {n}" + (f" ({d})" if d else "") for k, (n, d) in data.items())
        raise AuditError(
            f"the networks were made on different data sets ({which}): give one data set's runs"
        )
    for child, parent in (("pruned", "train"), ("constrained", "handnet"), ("free", "handnet")):
        made_from = runs[child].meta.parent if child in runs else None
        if (
            made_from is not None
            and parent in runs
            and not _same(made_from, runs[parent].checkpoint)
        ):
            raise AuditError(
                f"--{child} {runs[child].source} was made from {made_from}, "
                f"not from --{parent} {runs[parent].source}: give the runs that belong together"
            )


def adopted_config(
    runs: dict[str, Adopted], name: str, runs_root: str, **settings: Any
) -> RunConfig:
    """The run's settings, as far as the networks' metadata tells them."""
    first = next(iter(runs.values())).meta
    train = runs["train"].meta if "train" in runs else None
    fields: dict[str, Any] = {
        "name": name, "runs_root": runs_root,
        "dataset": first.data.get("name") or RunConfig().dataset,
        "data_dir": first.data.get("data_dir"),
    }  # fmt: skip
    if train is not None:
        fields["widths"] = tuple(train.config.get("convs", RunConfig().widths))
        fields["fc4"] = int(train.config.get("fc4", RunConfig().fc4))
        fields["seed"] = train.seed if train.seed is not None else RunConfig().seed
        fields["epochs"] = train.epoch or RunConfig().epochs
    if "pruned" in runs:
        fields["prune_targets"] = tuple(runs["pruned"].meta.config.get("convs", ()))
    elif "widths" in fields:  # no pruned net: the default targets, as far as the widths allow
        pairs = zip(RunConfig().prune_targets, fields["widths"], strict=False)
        fields["prune_targets"] = tuple(min(t, w) for t, w in pairs)
    fields.update({k: v for k, v in settings.items() if v is not None})
    return RunConfig(**fields)


def _adopt(adopted: Adopted, summarise: Callable[[Adopted, StageContext], dict[str, Any]]):
    def run(ctx: StageContext) -> dict[str, Any]:
        shutil.copytree(adopted.source, ctx.out, dirs_exist_ok=True)
        return summarise(adopted, ctx)

    return run


def _checkpoint(adopted: Adopted, ctx: StageContext) -> str:
    inside = adopted.checkpoint.relative_to(adopted.source)
    return (Path(ctx.out.name) / inside).as_posix()


def _accuracy(meta: CheckpointMeta) -> float | None:
    m = meta.metrics
    value = m.get("accuracy", m.get("test_accuracy"))
    return None if value is None else float(value)


def _summary(adopted: Adopted, ctx: StageContext) -> dict[str, Any]:
    """What the pipeline's producer stage would have summarised, read from the metadata."""
    meta = adopted.meta
    summary: dict[str, Any] = {
        "checkpoint": _checkpoint(adopted, ctx),
        "accuracy": _accuracy(meta),
        "adopted_from": str(adopted.source),
        "widths": list(meta.config.get("convs", [])),
    }
    if adopted.role.option == "pruned":
        summary.update(pruned_summary(meta, ctx, summary["checkpoint"]))
    return summary


def pruned_summary(meta: CheckpointMeta, ctx: StageContext, checkpoint: str) -> dict[str, Any]:
    """Parameters kept against the training run (when given) and the conv3 finding."""
    from simpleconvnet.steps import redundancy_summary

    out: dict[str, Any] = {"redundancy": redundancy_summary(meta.extra.get("redundancy") or {})}
    train = ctx.summary("train").get("checkpoint")
    if train:
        from dissect.infra.checkpoints import load_checkpoint

        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        before, _ = load_checkpoint(ctx.run_dir / train)
        after, _ = load_checkpoint(ctx.run_dir / checkpoint)
        out["parameters_kept"] = count(after) / count(before)
    return out


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def adopted_stages(runs: dict[str, Adopted]) -> list[Stage]:
    """The pipeline's stages with each producer replaced: by the adoption of the network given
    for it, or by an unavailable stage that names the command making it."""
    roles = {r.stage: r for r in ROLES}
    given = {a.role.stage: a for a in runs.values()}
    stages = []
    for stage in build_stages():
        role = roles.get(stage.name)
        if role is None:
            stages.append(stage)
        elif stage.name in given:
            a = given[stage.name]
            digest = digest_folder(a.source)
            stages.append(Stage(stage.name, _adopt(a, _summary), deps=stage.deps,
                                extra_inputs=_constant({"adopted": digest}), needs_deps=False))  # fmt: skip
        else:
            why = f"not given: make it with `{role.command}` and pass --{role.option}"
            stages.append(Stage(stage.name, stage.run, deps=stage.deps, unavailable=_constant(why)))
    return stages
