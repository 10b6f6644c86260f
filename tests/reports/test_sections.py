"""Sections filled from stage folders written by hand: each file lands where it should."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tests.reports.conftest import run_reports


def png() -> bytes:
    from reports.figures import digit_png

    return digit_png(np.eye(28))


def finish(folder: Path, summary: dict) -> None:
    record = {"finished": True, "seconds": 1.5, "finished_at": "now", "summary": summary,
              "inputs_hash": "x", "outputs_digest": "y"}  # fmt: skip
    (folder / "stage.json").write_text(json.dumps(record))


def fresh(folder: Path) -> None:
    """Replace whatever the tiny pipeline wrote there by the hand-written files."""
    shutil.rmtree(folder.parent if folder.name == "channels" else folder, ignore_errors=True)
    folder.mkdir(parents=True)


def fake_stages(run: Path) -> None:
    prune = run / "prune"
    fresh(prune)
    pd.DataFrame({"iteration": [0, 1], "test_accuracy": [0.9, 0.89]}).to_csv(
        prune / "history.csv", index=False
    )  # noqa: E501
    pd.DataFrame({"layer": ["conv2"], "channel": [7], "l1": [0.01]}).to_csv(
        prune / "removed.csv", index=False
    )  # noqa: E501
    finish(prune, {"redundancy": {"redundant": True, "evidence": "conv3 copies conv2 (r=0.97)"}})
    dis = run / "dissect-simpleconvnet"
    fresh(dis / "channels")
    (dis / "channels" / "conv2-03.png").write_bytes(png())
    pd.DataFrame({"inner": [1, 2], "role": ["driver", "suppressor"]}).to_csv(
        dis / "channels" / "conv2-03.csv", index=False
    )  # noqa: E501
    pd.DataFrame({"class": [4], "channel": [3], "contribution": [2.5]}).to_csv(
        dis / "head.csv", index=False
    )  # noqa: E501
    (dis / "audit.json").write_text(
        json.dumps([{"index": 5, "label": 4, "pred": 9, "text": "conv2 channel 3 <drove> 9"}])
    )  # noqa: E501
    finish(dis, {"orientations": [0.0, 44.0, 92.0, 136.0], "gabor_r2": 0.81})
    sup = run / "superstimuli-simpleconvnet"
    fresh(sup)
    (sup / "classes.png").write_bytes(png())
    finish(sup, {})


def test_sections_show_what_the_stages_wrote(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "full"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("report"))
    fake_stages(run)
    assert run_reports("build", str(run), "--quiet") == 0
    html = (run / "report" / "index.html").read_text()
    assert "conv3 copies conv2 (r=0.97)" in html
    assert "conv2-03: contributions and roles" in html and "suppressor" in html
    assert "conv2 channel 3 &lt;drove&gt; 9" in html
    assert 'alt="superstimuli of SimpleConvNet (unpruned) classes"' in html
    assert "0.81" in html  # the scorecard's Gabor R^2
    assert "4 filters fit a Gabor well, oriented near 0, 45, 90, 135" in html
