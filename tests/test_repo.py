"""Repository hygiene that the deployment relies on."""

from __future__ import annotations

import subprocess

from .conftest import REPO, SHIPPED_ONNX, SHIPPED_PT, SHIPPED_READER

TEN_MB = 10 * 1024 * 1024


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def test_no_tracked_file_is_large_or_an_lfs_pointer() -> None:
    for name in _tracked():
        path = REPO / name
        if not path.is_file():
            continue
        assert path.stat().st_size <= TEN_MB, f"{name} is over 10 MB"
        with path.open("rb") as fh:
            head = fh.read(64)
        assert not head.startswith(b"version https://git-lfs"), f"{name} is a Git LFS pointer"


def test_stroke_data_is_not_copied_into_the_repo() -> None:
    assert not [n for n in _tracked() if n.endswith(".jsonl.gz")]


def test_shipped_weights_fit_the_budget() -> None:
    shipped = (SHIPPED_ONNX, SHIPPED_PT, SHIPPED_READER)
    assert all(path.is_file() for path in shipped)
    assert sum(path.stat().st_size for path in shipped) <= 5 * 1024 * 1024


def test_shipped_files_hold_one_model_and_match_the_weights_readme() -> None:
    """The ONNX file and the checkpoint are shipped together: same architecture, and the hashes
    weights/README.md records are the files' own (so a re-export cannot go unrecorded)."""
    import hashlib
    import json

    import onnx

    from digit_detector.model.checkpoint import read_checkpoint

    props = {p.key: p.value for p in onnx.load(str(SHIPPED_ONNX)).metadata_props}
    assert json.loads(props["digit_detector"])["config"] == read_checkpoint(SHIPPED_PT)["config"]
    readme = (REPO / "weights" / "README.md").read_text()
    for path in (SHIPPED_ONNX, SHIPPED_PT, SHIPPED_READER):
        assert f"`{hashlib.sha256(path.read_bytes()).hexdigest()}`" in readme, f"{path.name} unrecorded"
