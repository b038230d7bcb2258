"""Deployment checks that can run here: the Dockerfile lints clean, and the runtime
requirements alone (no torch: what the image installs) serve the app. No Docker engine runs on
this machine, so a fresh venv built from requirements.txt stands in for the image."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .appserver import free_port, get, start_app, stop_app
from .conftest import REPO


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


@pytest.mark.slow
def test_runtime_requirements_alone_serve_the_app(tmp_path: Path, onnx_weights: Path) -> None:
    env_dir = tmp_path / "runtime-venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REPO / "requirements.txt")], check=True, timeout=1200)
    subprocess.run(
        [*pip, "--no-deps", "--no-build-isolation", str(REPO)], check=False, timeout=600, capture_output=True
    )
    has_pkg = subprocess.run([python, "-c", "import digit_detector"], capture_output=True, check=False)
    env = {
        "DIGIT_DETECTOR_WEIGHTS": str(onnx_weights),
        "DIGIT_DETECTOR_FEEDBACK_DIR": str(tmp_path / "feedback"),
    }
    if has_pkg.returncode != 0:  # no build backend in the bare venv: run from the source tree
        env["PYTHONPATH"] = str(REPO / "src")
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
    assert no_torch.returncode != 0, "torch must not be in the runtime environment"
    port = free_port()
    proc = start_app(python, port, env, timeout=120)
    try:
        assert get(f"http://127.0.0.1:{port}/_stcore/health") == (200, "ok")
        status, page = get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "<html" in page.lower()
    finally:
        stop_app(proc)
