"""The live audit in a real headless browser: the page's own forward pass against PyTorch."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from reports.build import report_context
from reports.html import render_html
from reports.live import center_digit
from reports.pipeline import read_record
from tests.reports.test_browser import ARGS, CHROMIUM

NAME = "<img src=x onerror=alert(1)>live"
BAD_DESCRIPTION = "</script><b>bold</b>"


def checkpoint_model(run: Path, stage: str) -> torch.nn.Module:
    from dissect.infra.checkpoints import load_checkpoint

    record = read_record(run / stage)
    assert record is not None
    model, _ = load_checkpoint(run / record["summary"]["checkpoint"])
    return model.eval()


@pytest.fixture(scope="module")
def live_page(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny run's page with a run name holding markup and a channel description that tries
    to close the weights' script element; the browser's errors and requests are recorded."""
    if not CHROMIUM.is_file():
        pytest.skip("no browser: /usr/bin/chromium is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    copy = tmp_path_factory.mktemp("live") / "run"
    copy.mkdir()
    for entry in tiny_run.iterdir():
        if entry.name not in ("run.json", "live", "report"):
            (copy / entry.name).symlink_to(entry)
    shutil.copytree(tiny_run / "live", copy / "live")
    data = json.loads((copy / "live" / "live.json").read_text())
    data["networks"][0]["convs"][-1]["descriptions"][0] = BAD_DESCRIPTION
    (copy / "live" / "live.json").write_text(json.dumps(data))
    run_json = json.loads((tiny_run / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**run_json, "name": NAME}))
    index = copy / "index.html"
    index.write_text(render_html(report_context(copy)))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (errors.append(f"dialog {d.message}"), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(index.resolve().as_uri())
        page.wait_for_load_state("load")
        yield page, errors, requests, index
        browser.close()


def draw(page) -> None:
    canvas = page.locator("#live-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 0.35 * w, y0 + 0.2 * h)
    page.mouse.down()
    for px, py in ((0.7, 0.3), (0.45, 0.85), (0.6, 0.6)):
        page.mouse.move(x0 + px * w, y0 + py * h, steps=5)
    page.mouse.up()


def assert_matches_pytorch(page, model: torch.nn.Module) -> None:
    grid = np.array(page.evaluate("window.liveAudit.grid()"))
    scores = page.evaluate("window.liveAudit.scores()")
    split = page.evaluate("window.liveAudit.contributions()")
    x = torch.tensor(grid, dtype=torch.float32).view(1, 1, 28, 28)
    with torch.no_grad():
        logits = model.logits(x)[0]
        features = model.features(x)[0].flatten(1)  # [C, h * w]
        head = (model.fc5.weight @ model.fc4.weight).view(len(logits), *features.shape)
        per_channel = (head * features).sum(-1)  # [classes, C]
    close = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(scores["logits"], logits.numpy(), **close)
    np.testing.assert_allclose(scores["probs"], logits.softmax(0).numpy(), **close)
    np.testing.assert_allclose(split["values"], per_channel.numpy(), **close)
    np.testing.assert_allclose(
        np.sum(split["values"], 1) + split["bias"], scores["logits"], **close
    )
    assert split["layer"] == model.conv_names[-1]


def test_drawn_stroke_gives_pytorchs_scores_for_every_network(live_page, tiny_run: Path) -> None:
    page, errors, _, _ = live_page
    assert page.evaluate("window.liveAudit.network()") == "pruned"
    draw(page)
    assert np.array(page.evaluate("window.liveAudit.grid()")).sum() > 10
    keys = page.eval_on_selector_all("#live-net option", "os => os.map(o => o.value)")
    assert keys == ["pruned", "handnet-constrained"]
    for key, stage in zip(keys, ("prune", "handnet-constrained"), strict=True):
        page.select_option("#live-net", key)
        assert page.evaluate("window.liveAudit.network()") == key
        assert_matches_pytorch(page, checkpoint_model(tiny_run, stage))
    assert errors == []


def test_picked_test_digit_gives_pytorchs_scores(live_page, tiny_run: Path) -> None:
    page, errors, _, _ = live_page
    page.select_option("#live-net", "pruned")
    page.locator("#live-digits button").nth(1).click()
    grid = np.array(page.evaluate("window.liveAudit.grid()"))
    assert grid.max() > 0.5 and grid.min() >= 0
    assert_matches_pytorch(page, checkpoint_model(tiny_run, "prune"))
    assert errors == []


def test_js_centring_agrees_with_python(live_page) -> None:
    page, _, _, _ = live_page
    page.evaluate("window.liveAudit.clear()")
    draw(page)
    raw = np.array(page.evaluate("window.liveAudit.rawGrid()")).reshape(28, 28)
    grid = np.array(page.evaluate("window.liveAudit.grid()")).reshape(28, 28)
    np.testing.assert_allclose(grid, center_digit(raw), atol=1e-9)
    rect = np.zeros((28, 28))
    rect[3:13, 2:7] = 0.75
    from_js = np.array(page.evaluate("r => window.liveAudit.centre(r)", rect.ravel().tolist()))
    np.testing.assert_allclose(from_js.reshape(28, 28), center_digit(rect), atol=1e-12)
    assert (from_js.reshape(28, 28).sum(1) > 0).sum() == 20


def test_clicked_channel_shows_its_dissection_table(live_page, tiny_run: Path) -> None:
    from dissect.contributions import layer_contributions

    page, errors, _, _ = live_page
    page.select_option("#live-net", "pruned")
    page.evaluate("window.liveAudit.clear()")
    draw(page)
    page.locator("#live-split tr.live-channel").nth(1).click()
    table = page.locator("#live-dissection table")
    heads = table.locator("th").all_inner_texts()
    assert heads == ["inner channel j", "x_j: description", "x_j at the position",
                     "w_j (kernel sum)", "a_j", "c_j (running sum)", "y"]  # fmt: skip
    found = page.evaluate("window.liveAudit.dissection()")
    assert found["channel"] == 2
    assert table.locator("tbody tr").count() == len(found["rows"]) + 1
    model = checkpoint_model(tiny_run, "prune")
    image = torch.tensor(page.evaluate("window.liveAudit.grid()"), dtype=torch.float32)
    with torch.no_grad():
        _, a, bias, y = layer_contributions(model, found["layer"], image.view(1, 1, 28, 28), 1)
    r, c = found["position"]
    assert found["y"] == pytest.approx(float(y.max()), rel=1e-4, abs=1e-5)  # most active
    assert found["y"] == pytest.approx(float(y[0, r, c]), rel=1e-4, abs=1e-5)
    close = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose([row["a"] for row in found["rows"]], a[0, :, r, c].numpy(), **close)
    assert found["bias"] == pytest.approx(float(bias), abs=1e-6)
    assert found["rows"][-1]["c"] + found["bias"] == pytest.approx(found["y"], rel=1e-9, abs=1e-9)
    assert errors == []


def test_page_stays_offline_and_escaped(live_page) -> None:
    page, errors, requests, index = live_page
    assert all(u == index.resolve().as_uri() or u.startswith("data:") for u in requests)
    live = page.locator("#live")
    assert NAME in live.inner_text()
    assert live.locator("img").count() == 0
    assert page.locator("#live-split td", has_text=BAD_DESCRIPTION).count() == 1
    assert page.locator("#live-split b").count() == 0
    assert errors == []


def test_pdf_leaves_the_live_audit_out(tiny_run: Path) -> None:
    html = (tiny_run / "report" / "index.html").read_text()
    assert 'id="live-data"' in html and "window.liveAudit" in html
    pdf = tiny_run / "report" / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils is not installed")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "draw a digit and watch" in " ".join(text.split())
    assert "Dissection of the chosen channel" not in text
