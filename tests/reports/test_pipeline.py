"""The cached stage runner on two toy stages: what re-runs when, and what is reused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reports.config import RunConfig
from reports.pipeline import Stage, StageContext, run_pipeline


def toy_stages(calls: list[str]) -> list[Stage]:
    def first(ctx: StageContext) -> dict:
        calls.append("first")
        (ctx.out / "value.txt").write_text(str(ctx.config.epochs))
        return {"epochs": ctx.config.epochs}

    def second(ctx: StageContext) -> dict:
        calls.append("second")
        upstream = (ctx.run_dir / "first" / "value.txt").read_text()
        (ctx.out / "echo.txt").write_text(upstream + ctx.config.description)
        return {"upstream": ctx.summary("first")["epochs"]}

    return [
        Stage("first", first, keys=("epochs",)),
        Stage("second", second, deps=("first",), keys=("description",)),
    ]


def statuses(config: RunConfig, calls: list[str], force: bool = False) -> list[str]:
    outcomes = run_pipeline(toy_stages(calls), config, force=force, quiet=True)
    return [o.status for o in outcomes]


def test_reuse_rerun_and_force(tmp_path: Path) -> None:
    calls: list[str] = []
    config = RunConfig(name="toy", runs_root=str(tmp_path), epochs=2, device="cpu")
    assert statuses(config, calls) == ["ran", "ran"]
    assert statuses(config, calls) == ["reused", "reused"]
    # a key only the second stage reads: the first is reused
    assert statuses(replace(config, description="x"), calls) == ["reused", "ran"]
    # the first stage's output changes: the second, which reads it, runs again
    assert statuses(replace(config, description="x", epochs=3), calls) == ["ran", "ran"]
    assert (tmp_path / "toy" / "second" / "echo.txt").read_text() == "3x"
    assert statuses(replace(config, description="x", epochs=3), calls, force=True) == ["ran"] * 2
    assert calls == ["first", "second", "second", "first", "second", "first", "second"]


def test_a_failed_stage_is_not_recorded_as_finished(tmp_path: Path) -> None:
    def boom(ctx: StageContext) -> dict:
        raise RuntimeError("boom")

    config = RunConfig(name="toy", runs_root=str(tmp_path), device="cpu")
    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline([Stage("boom", boom)], config, quiet=True)
    assert not (tmp_path / "toy" / "boom" / "stage.json").exists()


def test_an_unavailable_stage_is_said_and_skipped(tmp_path: Path) -> None:
    config = RunConfig(name="toy", runs_root=str(tmp_path), device="cpu")
    stage = Stage("later", lambda ctx: {}, unavailable=lambda: "package not installed")
    after = Stage("after", lambda ctx: {}, deps=("later",))
    report = Stage("report", lambda ctx: {"ok": 1}, deps=("later",), needs_deps=False)
    outcomes = run_pipeline([stage, after, report], config, quiet=True)
    assert (outcomes[0].status, outcomes[0].note) == ("unavailable", "package not installed")
    assert (outcomes[1].status, outcomes[1].note) == (
        "unavailable",
        "needs stage later, which is not available",
    )
    assert outcomes[2].status == "ran"
