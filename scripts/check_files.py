"""pre-commit hook: trailing whitespace, missing final newline, files over the size limit.

Stock pre-commit-hooks cannot be cloned on this network, so this small script stands in.
"""

from __future__ import annotations

import sys
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024  # the Space refuses plain files over 10 MB; keep well below
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ""}
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".onnx", ".pt", ".gz"}


def check(path: Path) -> list[str]:
    problems = []
    size = path.stat().st_size
    if size > MAX_BYTES:
        problems.append(f"{path}: {size / 1e6:.1f} MB is over the {MAX_BYTES / 1e6:.0f} MB limit")
    if path.suffix.lower() in BINARY_SUFFIXES or path.suffix.lower() not in TEXT_SUFFIXES:
        return problems
    text = path.read_bytes()
    if b"\0" in text:
        return problems
    for i, line in enumerate(text.decode("utf-8", errors="replace").split("\n"), 1):
        if line.rstrip(" \t\r") != line.rstrip("\r"):
            problems.append(f"{path}:{i}: trailing whitespace")
    if text and not text.endswith(b"\n"):
        problems.append(f"{path}: no newline at end of file")
    return problems


def main(argv: list[str]) -> int:
    problems = [p for name in argv if Path(name).is_file() for p in check(Path(name))]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
