"""Start and stop `streamlit run app.py` for tests that need a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request

from .conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode(errors="replace")


def start_app(
    python: str, port: int, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """`streamlit run app.py` on 127.0.0.1:port; returns once /_stcore/health answers ok."""
    cmd = [
        python,
        "-m",
        "streamlit",
        "run",
        str(REPO / "app.py"),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
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
