"""Real browser, real server: `streamlit run` on a free loopback port, headless Chromium
(Debian's, driven by Playwright), a digit drawn with mouse strokes, its label read back."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .appserver import (
    SEVEN,
    chromium,
    draw,
    free_port,
    get,
    open_canvas,
    start_app,
    stop_app,
    wait_for_number,
)

pytestmark = pytest.mark.browser


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
    yield from chromium()


def test_health_endpoint_answers(app_url: str) -> None:
    assert get(f"{app_url}/_stcore/health") == (200, "ok")


def test_draw_a_digit_and_see_it_detected(app_url: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page, canvas = open_canvas(browser, app_url)
    page.get_by_text("Draw a number").first.wait_for(timeout=30_000)
    page.get_by_text("Draw a digit").first.wait_for(timeout=30_000)  # the blank-canvas hint
    draw(page, canvas, SEVEN)
    page.get_by_text("Number read left to right").first.wait_for(timeout=30_000)
    code_blocks = wait_for_number(page)
    page.screenshot(path=str(tmp_path / "e2e-desktop.png"), full_page=True)
    assert any("7" in c for c in code_blocks), code_blocks
    page.close()


def test_phone_width_layout_does_not_overflow(app_url: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
    page.screenshot(path=str(tmp_path / "e2e-phone.png"), full_page=True)
    assert width <= 390, f"page is {width} px wide at a 390 px viewport"
    page.close()
