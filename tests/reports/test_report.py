"""The pipeline's caching, the PDF, escaping and the message for a missing stage."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.reports.conftest import TINY, run_reports


def test_run_writes_html_pdf_and_stage_records(tiny_run: Path) -> None:
    assert (tiny_run / "report" / "index.html").stat().st_size > 1000
    assert (tiny_run / "report" / "report.pdf").read_bytes().startswith(b"%PDF")
    record = json.loads((tiny_run / "train" / "stage.json").read_text())
    assert record["finished"] and len(record["inputs_hash"]) == 64


def test_second_run_reuses_every_stage(tiny_run: Path, capsys: pytest.CaptureFixture) -> None:
    runs, data = tiny_run.parent, tiny_run.parent.parent / "data"
    before = (tiny_run / "report" / "index.html").stat().st_mtime_ns
    code = run_reports(
        "run", "--name", "tiny", "--runs-root", str(runs), "--data-dir", str(data),
        "--description", "<script>alert('x')</script> & co", *TINY,
    )  # fmt: skip
    assert code == 0
    assert "0 reused" not in capsys.readouterr().out
    assert (tiny_run / "report" / "index.html").stat().st_mtime_ns == before


def test_user_text_is_escaped(tiny_run: Path) -> None:
    html = (tiny_run / "report" / "index.html").read_text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in html


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed")
def test_pdf_renders_every_page_with_the_sections(tiny_run: Path, tmp_path: Path) -> None:
    pdf = tiny_run / "report" / "report.pdf"
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "p")], check=True)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(next(l for l in info.stdout.splitlines() if l.startswith("Pages:")).split()[1])
    assert len(list(tmp_path.glob("p-*.png"))) == pages > 1
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    for title in ("Overview", "Pruning", "First layer side by side", "Confusion and mistakes"):
        assert title in text


def test_build_names_a_missing_stage(tiny_run: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "partial"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("report"))
    shutil.rmtree(copy / "measure-simpleconvnet")
    assert run_reports("build", str(copy), "--quiet") == 0
    err = capsys.readouterr().err
    assert "stage 'measure-simpleconvnet' has not finished" in err
    assert "reports run --name partial" in err
    assert "measure-simpleconvnet" in (copy / "report" / "index.html").read_text()


def test_build_of_a_folder_that_is_no_run_is_one_line_error(tmp_path: Path, capsys) -> None:
    from dissect.infra.runtime import run_cli
    from reports.cli import _main

    assert run_cli(_main, ["build", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_run_name_with_markup_is_escaped(tiny_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "named"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("report"))
    config = json.loads((copy / "run.json").read_text())
    config["name"] = "<script>alert(1)</script>"
    (copy / "run.json").write_text(json.dumps(config))
    assert run_reports("build", str(copy), "--quiet") == 0
    html = (copy / "report" / "index.html").read_text()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
