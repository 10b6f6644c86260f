"""The HTML report in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def page_errors(tiny_run: Path):
    if not CHROMIUM.is_file():
        pytest.skip("no browser: /usr/bin/chromium is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"failed load {r.url[:80]}"))
        page.goto((tiny_run / "report" / "index.html").resolve().as_uri())
        page.wait_for_load_state("load")
        yield page, errors
        browser.close()


def test_page_loads_without_errors(page_errors) -> None:
    page, errors = page_errors
    assert errors == []
    broken = page.evaluate(
        "Array.from(document.images).filter(i => i.offsetParent && !i.naturalWidth).length"
    )
    assert broken == 0
    assert page.locator("nav#toc a").count() >= 5


def test_confusion_cell_shows_examples(page_errors) -> None:
    page, _ = page_errors
    cell = page.locator('table.cm td.cm-cell:not([data-count="0"])').first
    cell.scroll_into_view_if_needed()
    cell.click()
    panel = page.locator(".cm-panel").first
    assert panel.locator("img").count() >= 1
    assert "most confident" in panel.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-confusion.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)


def test_sortable_table_sorts(page_errors) -> None:
    page, _ = page_errors
    header = page.locator("#stages table.sortable thead th").nth(1)
    header.click()
    values = page.eval_on_selector_all(
        "#stages tbody tr td:nth-child(2)", "tds => tds.map(t => parseFloat(t.dataset.sort))"
    )
    assert values == sorted(values)
    assert header.get_attribute("aria-sort") == "ascending"
