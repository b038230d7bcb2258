"""Start and stop `streamlit run app.py` for tests that need a live server, and drive the
page in Debian's Chromium (Playwright with `executable_path`, never a downloaded browser)."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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
# A "7": the top bar, then the long diagonal, in one stroke, large, as people draw it.
SEVEN = [[(120, 90), (200, 88), (280, 90), (240, 180), (200, 260), (175, 330)]]


def chromium() -> Iterator[Any]:
    """A headless Chromium for a test module (skips locally without it; fails in CI)."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt")
        pytest.skip("chromium not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def draw(page: Any, canvas: Any, strokes: Sequence[Sequence[tuple[float, float]]]) -> None:
    """Mouse strokes on the canvas, in canvas pixels from its top-left corner."""
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


def open_canvas(browser: Any, url: str, **context: Any) -> tuple[Any, Any]:
    """A new page on the app, once the canvas is ready: (page, canvas locator)."""
    page = browser.new_page(**({"viewport": {"width": 1280, "height": 1100}} | context))
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=60_000)
    return page, canvas


def wait_for_number(page: Any) -> list[str]:
    """The texts of the number blocks, once one holds a number."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stCode]')].some(e => e.innerText.trim())",
        timeout=30_000,
    )
    return list(page.locator("[data-testid='stCode']").all_inner_texts())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode(errors="replace")


def start_app(
    python: str,
    port: int,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    app_dir: Path = REPO,
    prefix: Sequence[str] = (),
    log: Path | None = None,
    base_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`streamlit run app.py` (in `app_dir`, after `prefix`, e.g. setpriv) on 127.0.0.1:port;
    returns once /_stcore/health answers ok. With `log`, the server's output goes there.
    `env` is added to `base_env` (default: this process's environment)."""
    cmd = [
        *prefix,
        python,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    sink = log.open("wb") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(
        cmd,
        cwd=app_dir,
        env={**(os.environ if base_env is None else base_env), **(env or {})},
        stdout=sink,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else log.read_text() if log else ""
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{out}")
        try:
            if get(f"http://127.0.0.1:{port}/_stcore/health") == (200, "ok"):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise TimeoutError(f"app did not become healthy on port {port} within {timeout} s")


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
