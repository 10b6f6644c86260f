"""``reports run`` under torchrun (2 gloo processes) finishes every stage with the summaries of one
process, and only rank 0 writes into the run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.dist_helpers import finish, single_node
from tests.reports.conftest import TINY

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a if "seconds" not in k)
    return a == b


def test_reports_run_on_two_processes_matches_one(tiny_run: Path, tmp_path: Path) -> None:
    one = json.loads((tiny_run / "run.json").read_text())
    runs = tmp_path / "runs"
    code, output = finish(
        single_node(
            2,
            "-m",
            "reports",
            "run",
            "--name",
            "tiny",
            "--runs-root",
            str(runs),
            "--data-dir",
            one["data_dir"],
            "--description",
            one["description"],
            *TINY,
        ),  # fmt: skip
        timeout=280,
    )
    assert code == 0, output
    assert output.count("reports run tiny:") == 1, output  # only rank 0 speaks
    many = runs / "tiny"
    stages = sorted(p.parent.name for p in tiny_run.glob("*/stage.json"))
    assert stages == sorted(p.parent.name for p in many.glob("*/stage.json"))
    assert len(stages) > 10
    for stage in stages:
        a = json.loads((tiny_run / stage / "stage.json").read_text())
        b = json.loads((many / stage / "stage.json").read_text())
        assert a.get("finished") == b.get("finished"), stage
        assert same(a.get("summary"), b.get("summary")), stage
    assert (many / "report" / "report.pdf").stat().st_size > 10_000
    assert not any(p.name.startswith("tmp") for p in many.rglob("*")), "half-written files left"
