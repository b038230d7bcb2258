"""Real browser, real server: `streamlit run` on a free loopback port, headless Chromium
(Debian's, driven by Playwright), a digit drawn with mouse strokes, its label read back."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .appserver import free_port, get, start_app, stop_app
from .conftest import REPO

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def app_url(onnx_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        "DIGIT_DETECTOR_WEIGHTS": str(onnx_weights),
        "DIGIT_DETECTOR_FEEDBACK_DIR": str(tmp_path_factory.mktemp("feedback")),
    }
    proc = start_app(sys.executable, port, env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_app(proc)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt")
        pytest.skip("chromium not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_health_endpoint_answers(app_url: str) -> None:
    assert get(f"{app_url}/_stcore/health") == (200, "ok")


def _draw(page, canvas, strokes: list[list[tuple[float, float]]]) -> None:  # type: ignore[no-untyped-def]
    box = canvas.bounding_box()
    assert box is not None
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for (xa, ya), (xb, yb) in itertools.pairwise(stroke):
            for t in (0.25, 0.5, 0.75, 1.0):
                page.mouse.move(box["x"] + xa + (xb - xa) * t, box["y"] + ya + (yb - ya) * t)
        page.mouse.up()


def test_draw_a_digit_and_see_it_detected(app_url: str, browser) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(app_url, wait_until="domcontentloaded", timeout=60_000)
    page.get_by_text("Draw a number").first.wait_for(timeout=30_000)
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=60_000)
    page.get_by_text("Draw a digit").first.wait_for(timeout=30_000)  # the blank-canvas hint
    # A "7": the top bar, then the long diagonal, in one stroke, large, as people draw it.
    _draw(page, canvas, [[(120, 90), (200, 88), (280, 90), (240, 180), (200, 260), (175, 330)]])
    page.get_by_text("Number read left to right").first.wait_for(timeout=30_000)
    page.wait_for_function(  # the number itself, once the script run has finished rendering
        "() => [...document.querySelectorAll('[data-testid=stCode]')].some(e => e.innerText.trim())",
        timeout=30_000,
    )
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "e2e-desktop.png"), full_page=True)
    code_blocks = page.locator("[data-testid='stCode']").all_inner_texts()
    assert any("7" in c for c in code_blocks), code_blocks
    page.close()


def test_phone_width_layout_does_not_overflow(app_url: str, browser) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile",
    )
    page.goto(app_url, wait_until="domcontentloaded", timeout=60_000)
    page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=str(ARTIFACTS / "e2e-phone.png"), full_page=True)
    assert width <= 390, f"page is {width} px wide at a 390 px viewport"
    page.close()
