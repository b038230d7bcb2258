"""Deployment checks that can run here: the Dockerfile lints clean, and the image's environment
serves the real page. No Docker engine runs on this machine, so the image is rebuilt the way
the Dockerfile builds it: its COPYed files, a fresh venv with requirements.txt then the package
(no torch), uid 1000 in a read-only app folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .appserver import SEVEN, chromium, draw, free_port, open_canvas, start_app, stop_app, wait_for_number
from .conftest import REPO


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_serves_on_7860_as_uid_1000_without_dev_requirements() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER 1000" in text and "--uid 1000" in text
    assert '"--server.port", "7860"' in text and '"--server.address", "0.0.0.0"' in text
    assert "HEALTHCHECK" in text and "/_stcore/health" in text
    assert "requirements-dev" not in text
    runtime = [
        line.split("==")[0].strip().lower()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "torch" not in runtime and "matplotlib" not in runtime


def _dockerfile_copies() -> list[str]:
    """The sources of the Dockerfile's COPY lines: exactly what the image holds."""
    sources: list[str] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"]:
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    return sources


def _build_image_folder(root: Path) -> tuple[Path, str]:
    """The image, without Docker: the COPYed files in a root-owned app folder, a fresh venv
    with requirements.txt then `pip install --no-deps .` (both must succeed), and the one
    user-owned folder the Dockerfile creates. Returns (app folder, python)."""
    app = root / "app"
    app.mkdir()
    for source in _dockerfile_copies():
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, app / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, app / source)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(app / "requirements.txt")], check=True, timeout=1200)
    subprocess.run([*pip, "--no-deps", "."], cwd=app, check=True, timeout=600)
    shutil.rmtree(app / "build", ignore_errors=True)
    (app / "feedback").mkdir()  # RUN install -d -o user -g user feedback
    return app, python


@pytest.mark.slow
@pytest.mark.browser
def test_image_environment_serves_a_drawn_digit_as_uid_1000(browser) -> None:  # type: ignore[no-untyped-def]
    assert "RUN install -d -o user -g user feedback" in (REPO / "Dockerfile").read_text()
    root = Path(tempfile.mkdtemp(prefix="image-"))
    try:
        app, python = _build_image_folder(root)
        no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
        assert no_torch.returncode != 0, "torch must not be in the runtime environment"
        home = root / "home"
        home.mkdir()
        prefix: list[str] = []
        if os.geteuid() == 0:  # like the image: uid 1000, a read-only app folder it does not own
            subprocess.run(["chmod", "-R", "a+rX,go-w", str(root)], check=True)
            os.chown(app / "feedback", 1000, 1000)
            os.chown(home, 1000, 1000)
            prefix = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"]
            probe = subprocess.run([*prefix, "touch", str(app / "probe")], capture_output=True, check=False)
            assert probe.returncode != 0, "the app folder must not be writable by uid 1000"
        port, log = free_port(), root / "server.log"
        # Only what the image sets: no weights path, no feedback folder, no PYTHONPATH.
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("DIGIT_DETECTOR", "PYTHON"))}
        proc = start_app(python, port, env, timeout=120, app_dir=app, prefix=prefix, log=log, base_env=clean)
        try:
            page, canvas = open_canvas(browser, f"http://127.0.0.1:{port}")
            draw(page, canvas, SEVEN)
            assert any("7" in c for c in wait_for_number(page))
            page.close()
        finally:
            stop_app(proc)
        server_log = log.read_text()
        assert "Traceback" not in server_log and "Error" not in server_log, server_log
        # The wheel's packaged weights, from any folder, with no environment variable.
        code = (
            "import numpy as np; from digit_detector import Detector; "
            "print(len(Detector().predict(np.full((64, 64), 255, np.uint8))))"
        )
        out = subprocess.run(
            [python, "-c", code], cwd=home, capture_output=True, text=True, check=True, env=clean
        )
        assert out.stdout.strip() == "0"
    finally:
        shutil.rmtree(root, ignore_errors=True)
