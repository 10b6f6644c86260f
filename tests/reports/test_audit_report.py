"""``reports audit``: the HTML/PDF report of one network a person brings, read in a real
browser and through poppler."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import make_mnist_folder
from tests.dissect.foreign_nets import tiny_data, train_briefly
from tests.reports.test_browser import ARGS, CHROMIUM

NETS_FILE = Path(__file__).resolve().parents[1] / "dissect" / "foreign_nets.py"


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory) -> Path:
    from dissect.foreign import import_model
    from reports.cli import _main

    root = tmp_path_factory.mktemp("audit")
    torch.manual_seed(0)
    model = train_briefly(import_model(f"{NETS_FILE}:ExampleNet"), *tiny_data(10, seed=0), steps=10)
    torch.save(model.state_dict(), root / "net.pt")
    data = make_mnist_folder(root / "data", n_train=20, n_test=60)
    code = _main(["audit", "--model", f"{NETS_FILE}:ExampleNet", "--weights", str(root / "net.pt"),
                  "--dataset", "mnist", "--data-dir", str(data), "--name", "mine",
                  "--description", "<b>my</b> net", "--runs-root", str(root / "runs"),
                  "--superstimulus-steps", "4", "--device", "cpu", "--quiet"])  # fmt: skip
    assert code == 0
    return root / "runs" / "mine" / "report"


def test_html_has_every_section_and_escapes_the_description(audit_run: Path) -> None:
    html = (audit_run / "index.html").read_text()
    for section in ("overview", "descriptions", "head", "dissection", "superstimuli", "confusion", "faithfulness", "audit"):  # fmt: skip
        assert f'id="{section}"' in html
    assert "&lt;b&gt;my&lt;/b&gt; net" in html and "<b>my</b>" not in html
    assert "3x3 kernels" in html  # a Gabor fit to 3x3 kernels is said to be no evidence
    assert "http://" not in html and "https://" not in html


def test_pdf_reads_back(audit_run: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils is missing (apt-get install poppler-utils)")
    text = subprocess.run(["pdftotext", str(audit_run / "report.pdf"), "-"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "How one ConvNet reasons" in text and "Which channels drive each class" in text
    pages = subprocess.run(["pdfinfo", str(audit_run / "report.pdf")], capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert (
        1 <= int(next(ln.split()[-1] for ln in pages.splitlines() if ln.startswith("Pages"))) <= 30
    )


def test_page_loads_in_a_browser_without_errors(audit_run: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.skip("no browser: /usr/bin/chromium is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: errors.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto((audit_run / "index.html").resolve().as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate("Array.from(document.images).filter(i => !i.naturalWidth).length")
        header = page.locator("#overview table.sortable thead th").nth(1)
        header.click()
        sorted_ok = header.get_attribute("aria-sort") == "ascending"
        browser.close()
    assert errors == [] and broken == 0 and sorted_ok


@pytest.mark.parametrize("name", ["SequentialNet", "lenet5"])
def test_the_other_two_shapes_get_their_report(name: str, tmp_path: Path) -> None:
    from dissect.foreign import import_model
    from reports.cli import _main

    torch.manual_seed(0)
    torch.save(import_model(f"{NETS_FILE}:{name}").state_dict(), tmp_path / "net.pt")
    data = make_mnist_folder(tmp_path / "data", n_train=20, n_test=40)
    code = _main(["audit", "--model", f"{NETS_FILE}:{name}", "--weights", str(tmp_path / "net.pt"),
                  "--dataset", "mnist", "--data-dir", str(data), "--name", name,
                  "--runs-root", str(tmp_path / "runs"), "--superstimulus-steps", "2",
                  "--device", "cpu", "--quiet"])  # fmt: skip
    html = (tmp_path / "runs" / name / "report" / "index.html").read_text()
    assert code == 0 and 'id="head"' in html and "Test accuracy" in html
