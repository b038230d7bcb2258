"""Shared fixtures. Tests never need ../shared/data: tiny stroke files are built here."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digit_detector.classes import CLASS_NAMES, OTHER_ID
from digit_detector.data.strokes import Drawing, load_drawings, write_stroke_file
from digit_detector.reader import DigitReader

REPO = Path(__file__).resolve().parents[1]
SHIPPED_ONNX = REPO / "src" / "digit_detector" / "weights" / "digit-detector.onnx"
SHIPPED_READER = REPO / "src" / "digit_detector" / "weights" / "digit-reader.onnx"
SHIPPED_PT = REPO / "weights" / "digit-detector.pt"


class ReadsEverythingAs(DigitReader):
    """A reader without an ONNX file that reads every crop as `class_id`: of the digits and
    "other" (class ids 0-10), or `every_class` (0-11, censored too). `calls`: crops per read."""

    def __init__(self, class_id: int, every_class: bool = False) -> None:
        self.class_ids = np.arange(len(CLASS_NAMES) if every_class else OTHER_ID + 1)
        self.class_id = class_id
        self.calls: list[int] = []
        self.path = Path(f"reads-everything-as-{class_id}")

    def read(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        self.calls.append(len(boxes))
        return np.eye(len(self.class_ids), dtype=np.float32)[[self.class_id] * len(boxes)]


CACHES = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")
NOT_WALKED = (".venv/", "mutants/", "runs/")  # large folders, or written by local training runs


def _files_outside_git() -> set[str] | None:
    """Untracked and ignored files of the checkout, folders expanded (None when this is not
    the top of a git checkout, e.g. mutmut's copy in mutants/)."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=REPO, capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO.resolve():
        return None
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return None
    files: set[str] = set()
    for line in out.stdout.splitlines():
        path = line[3:]
        if line[:2] not in ("??", "!!") or any(c in path for c in CACHES) or path in NOT_WALKED:
            continue
        found = (
            [path] if not path.endswith("/") else [str(f.relative_to(REPO)) for f in (REPO / path).rglob("*")]
        )
        files.update(f for f in found if not any(c in f for c in CACHES))
    return files


@pytest.fixture(scope="session", autouse=True)
def tests_write_only_to_temporary_folders() -> Iterator[None]:
    before = _files_outside_git()
    yield
    after = _files_outside_git()
    if before is not None and after is not None:
        assert not after - before, f"the tests wrote into the repository: {sorted(after - before)}"


def fixture_strokes(label: str, rng: np.random.Generator) -> list[list[list[float]]]:
    """Crude but distinct pen strokes per class, with per-writer wobble."""
    t = np.linspace(0, 1, 25)
    j = lambda a: (np.asarray(a) + rng.normal(0, 1.5, np.shape(a))).round(1).tolist()  # noqa: E731
    circle = lambda cx, cy, rx, ry, a0=0, a1=2 * math.pi: np.stack(  # noqa: E731
        [cx + rx * np.cos(a0 + (a1 - a0) * t), cy + ry * np.sin(a0 + (a1 - a0) * t)], 1
    )
    line = lambda x0, y0, x1, y1: np.stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t], 1)  # noqa: E731
    shapes = {
        "0": [circle(30, 50, 25, 45)],
        "1": [line(30, 0, 30, 100), line(15, 20, 30, 0)],
        "2": [
            np.concatenate(
                [circle(30, 30, 25, 28, math.pi, 2.2 * math.pi), line(50, 45, 5, 100), line(5, 100, 55, 100)]
            )
        ],
        "3": [
            circle(30, 27, 24, 25, -math.pi / 1.2, math.pi / 2),
            circle(30, 75, 26, 25, -math.pi / 2, math.pi / 1.2),
        ],
        "4": [line(40, 0, 0, 70), line(0, 70, 60, 70), line(45, 30, 45, 100)],
        "5": [line(55, 0, 10, 0), line(10, 0, 5, 45), circle(30, 70, 27, 28, -math.pi / 1.3, math.pi / 1.2)],
        "6": [np.concatenate([line(45, 0, 10, 50), circle(32, 72, 25, 27, math.pi, 3 * math.pi)])],
        "7": [np.concatenate([line(0, 0, 60, 0), line(60, 0, 20, 100)])],
        "8": [circle(30, 25, 20, 24), circle(30, 75, 25, 25)],
        "9": [circle(30, 28, 24, 26), line(54, 28, 45, 100)],
        "other": [line(0, 0, 80, 80), line(80, 0, 0, 80), circle(40, 40, 15, 15)],
        "censored": [
            circle(40, 90, 18, 12),
            circle(80, 90, 18, 12),
            line(48, 80, 48, 10),
            line(72, 80, 72, 10),
            circle(60, 10, 12, 10, math.pi, 2 * math.pi),
        ],
    }
    return [j(s) for s in shapes[label]]


def build_stroke_fixture(root: Path, per_label: int = 6, writers: int = 12, seed: int = 0) -> Path:
    """A folder shaped like ../shared/data, with real file names and a few drawings each."""
    rng = np.random.default_rng(seed)
    files = {
        "unipen_digits": [str(d) for d in range(10)],
        "unipen_other": ["other"],
        "quickdraw_censored": ["censored"],
    }
    for name, labels in files.items():
        records = []
        for label in labels:
            for i in range(per_label):
                writer = f"w{i % writers}" if name.startswith("unipen") else None
                records.append(
                    {
                        "id": f"{name}/{label}/{i}",
                        "label": label,
                        "text": label,
                        "writer": writer,
                        "strokes": fixture_strokes(label, rng),
                    }
                )
        write_stroke_file(root / "strokes" / f"{name}.jsonl.gz", records)
    return root


def stroke_fixture_with(stroke_dir: Path, root: Path, file_name: str, label: str, texts: list[str]) -> Path:
    """A copy of the fixture folder at `root` with one more stroke file, `file_name`: a drawing of
    `label` per text (its Quick, Draw! category, or the label), no writer."""
    shutil.copytree(stroke_dir, root)
    rng = np.random.default_rng(0)
    records = [
        {
            "id": f"{file_name}/{i}",
            "label": label,
            "text": text,
            "writer": None,
            "strokes": fixture_strokes(label, rng),
        }
        for i, text in enumerate(texts)
    ]
    write_stroke_file(root / "strokes" / f"{file_name}.jsonl.gz", records)
    return root


@pytest.fixture(scope="session")
def stroke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stroke_fixture(tmp_path_factory.mktemp("strokes"))


@pytest.fixture(scope="module")
def drawings(stroke_dir: Path) -> list[Drawing]:
    """The fixture's drawings as the loader reads them (one list per test module)."""
    return load_drawings(stroke_dir)


@pytest.fixture(scope="session")
def onnx_weights() -> Path:
    """The shipped ONNX weights: the product under test."""
    if not SHIPPED_ONNX.exists():
        pytest.fail(f"shipped weights missing: {SHIPPED_ONNX}")
    return SHIPPED_ONNX


def render_digit_canvas(
    label: str,
    size: tuple[int, int] = (400, 400),
    stroke: float = 14.0,
    seed: int = 0,
    box: tuple[float, float, float, float] = (120, 70, 280, 330),
) -> np.ndarray:
    """A transparent RGBA canvas with one fixture-style digit in `box`, as the app receives it."""
    from digit_detector.data.compose import draw_strokes
    from digit_detector.data.strokes import normalise

    rng = np.random.default_rng(seed)
    strokes = normalise(fixture_strokes(label, rng))
    pts = np.concatenate(strokes)
    span = pts.max(axis=0)
    x1, y1, x2, y2 = box
    scale = min((x2 - x1) / max(span[0], 1e-6), (y2 - y1) / max(span[1], 1e-6))
    gray = np.full((size[1], size[0]), 255, np.uint8)
    draw_strokes(gray, [s * scale + np.array([x1, y1], np.float32) for s in strokes], stroke)
    rgba = np.zeros((size[1], size[0], 4), np.uint8)
    rgba[..., 3] = 255 - gray
    return rgba


def overlay(*canvases: np.ndarray) -> np.ndarray:
    """RGBA canvases of one size (`render_digit_canvas`) drawn on one canvas: every drawing."""
    return np.maximum.reduce(canvases)


def tiny_train_args(
    stroke_dir: Path, out: Path, steps: int, batch: int = 8, val_scenes: int = 8
) -> list[str]:
    """CLI arguments for a quick CPU training run on the fixture strokes."""
    return [
        "train",
        "--data-dir",
        str(stroke_dir),
        "--max-steps",
        str(steps),
        "--batch-size",
        str(batch),
        "--val-scenes",
        str(val_scenes),
        "--workers",
        "0",
        "--out",
        str(out),
        "--quiet",
    ]
