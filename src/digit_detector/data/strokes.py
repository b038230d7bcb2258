"""Reader for the shared stroke-recording format (gzip JSON Lines, one drawing per line).

See ../shared/data/README.md: each line has id, label ("0".."9", "other", "censored"), text,
writer (or null) and strokes (pen-down polylines of [x, y] points, y pointing down).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classes import CENSORED_ID, CLASS_ID_BY_NAME, OTHER_ID
from ..errors import UserError
from .polylines import Polylines

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# Every file the composer draws from, with the role it plays. "Synthetic" censored drawings are
# for training only: validation must measure real doodles.
STROKE_FILES: dict[str, str] = {
    "unipen_digits": "digits",
    "pendigits_train": "digits",
    "unipen_other": "other",
    "omniglot_train": "other",
    "quickdraw_other": "other",
    "quickdraw_more_other": "other",
    "quickdraw_hard_negatives": "other",
    "quickdraw_censored": "censored",
    "censored_procedural": "censored-synthetic",
}
VAL_PERCENT = 10
# Quick, Draw! files: their `text` is the doodle's category. One category in ten (by a hash of its
# name) is never trained on, so validation can measure doodles of kinds the model never saw.
DOODLE_SOURCES = frozenset({"quickdraw_other", "quickdraw_more_other", "quickdraw_hard_negatives"})
UNSEEN_CATEGORY_MODULO = 10
# "other" drawings that look like a digit (found by `digit-detector data lookalikes`, see
# data/lookalikes.py): left out, because "other" must hold no digit look-alikes.
OTHER_LOOKALIKES_FILE = Path(__file__).with_name("other_lookalikes.txt")


class DataDirError(UserError, FileNotFoundError):
    """The stroke data directory (or a file in it) is missing or unreadable."""


@dataclass
class Drawing:
    """One recorded drawing, normalised so its ink spans [0, 1] on its longer side."""

    id: str
    class_id: int
    source: str
    writer: str | None
    ink: Polylines = field(repr=False)  # every stroke's points, each stroke >= 1 point
    synthetic: bool = False
    category: str | None = None  # the Quick, Draw! category of a doodle, else None

    @property
    def group(self) -> str:
        """What the train/val split is keyed on: the writer where known, else the drawing."""
        return f"{self.source}/{self.writer}" if self.writer else self.id

    @property
    def split(self) -> str:
        """ "train", "val" (held-out writers or drawings) or "unseen" (a held-out doodle category:
        never trained on, validated as its own group)."""
        if self.synthetic:
            return "train"
        if self.category is not None and is_unseen_category(self.category):
            return "unseen"
        return "val" if zlib.crc32(self.group.encode()) % 100 < VAL_PERCENT else "train"


def without_generated_censored(drawings: list[Drawing]) -> list[Drawing]:
    """The drawings without the generated obscene doodles (`censored_procedural`): what
    validation measures censored on (generated ones are easier), and what `train` and
    `train-reader --no-generated-censored` learn censored from (their clean shaft-and-circles
    shapes may teach that any elongated doodle is obscene)."""
    return [d for d in drawings if not (d.class_id == CENSORED_ID and d.synthetic)]


def is_unseen_category(category: str) -> bool:
    """True for the doodle categories held out of training (about one in ten)."""
    return zlib.crc32(f"category/{category}".encode()) % UNSEEN_CATEGORY_MODULO == 0


def normalise(strokes: Iterable[Iterable[Iterable[float]]]) -> list[np.ndarray]:
    """Shift to min 0 and scale so the longer side of the ink spans 1 (aspect kept)."""
    arrays = [np.asarray(s, dtype=np.float32).reshape(-1, 2) for s in strokes]
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        raise ValueError("drawing has no ink")
    allpts = np.concatenate(arrays)
    lo = allpts.min(axis=0)
    span = float((allpts.max(axis=0) - lo).max()) or 1.0
    return [(a - lo) / span for a in arrays]


def parse_line(line: str, source: str) -> Drawing:
    record = json.loads(line)
    label = record["label"]
    if label not in CLASS_ID_BY_NAME:
        raise ValueError(f"unknown label {label!r} in {record.get('id')!r}")
    class_id = CLASS_ID_BY_NAME[label]
    synthetic = STROKE_FILES.get(source) == "censored-synthetic"
    if STROKE_FILES.get(source, "").startswith("censored") != (class_id == CENSORED_ID):
        raise ValueError(f"{record['id']!r}: label {label!r} does not belong in {source}")
    return Drawing(
        id=record["id"],
        class_id=class_id,
        source=source,
        writer=record.get("writer"),
        ink=Polylines.from_strokes(normalise(record["strokes"])),
        synthetic=synthetic,
        category=record.get("text") if source in DOODLE_SOURCES else None,
    )


def iter_file(path: Path) -> Iterator[Drawing]:
    source = path.name.removesuffix(".jsonl.gz")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield parse_line(line, source)
                    except (ValueError, KeyError, TypeError) as exc:
                        raise ValueError(f"{path}:{line_no}: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise DataDirError(f"cannot read stroke file {path}: {exc}") from exc


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The stroke data directory; raises DataDirError naming the path if it is missing."""
    path = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    strokes = path / "strokes"
    if not strokes.is_dir():
        raise DataDirError(
            f"stroke data not found: {strokes} does not exist. Point --data-dir at the folder "
            f"holding strokes/*.jsonl.gz (default {DEFAULT_DATA_DIR})."
        )
    return path


def read_lookalike_ids(path: Path = OTHER_LOOKALIKES_FILE) -> frozenset[str]:
    """Ids listed in a look-alike file (tab-separated; comment lines start with #)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataDirError(f"cannot read the look-alike list {path}: {exc}") from exc
    return frozenset(line.split("\t", 1)[0] for line in text.splitlines() if line.strip() and line[0] != "#")


def load_drawings(
    data_dir: str | Path | None = None,
    files: Iterable[str] | None = None,
    limit_per_file: int | None = None,
    lookalikes: Path | None = OTHER_LOOKALIKES_FILE,
) -> list[Drawing]:
    """Read every drawing of the named stroke files (default: all known files that exist),
    leaving out the "other" drawings listed in `lookalikes` (None: keep every drawing)."""
    root = resolve_data_dir(data_dir) / "strokes"
    names = list(files) if files is not None else list(STROKE_FILES)
    paths = [root / f"{name}.jsonl.gz" for name in names]
    present = [p for p in paths if p.is_file()]
    if files is not None and len(present) != len(paths):
        missing = [str(p) for p in paths if not p.is_file()]
        raise DataDirError(f"stroke files missing: {', '.join(missing)}")
    if not present:
        raise DataDirError(f"no stroke files (*.jsonl.gz) found in {root}")
    excluded = read_lookalike_ids(lookalikes) if lookalikes is not None else frozenset()
    drawings: list[Drawing] = []
    for path in present:
        for i, drawing in enumerate(iter_file(path)):
            if limit_per_file is not None and i >= limit_per_file:
                break
            if drawing.class_id != OTHER_ID or drawing.id not in excluded:
                drawings.append(drawing)
    return drawings


def write_stroke_file(path: Path, records: Iterable[Mapping[str, object]]) -> None:
    """Write records in the shared format (used by tests to build tiny fixtures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
