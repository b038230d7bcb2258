"""'other' must hold no digit look-alikes: the finder, the committed list and the loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digit_detector.classes import OTHER_ID
from digit_detector.data.lookalikes import find_lookalikes, lookalike_sheet, write_lookalikes
from digit_detector.data.strokes import (
    OTHER_LOOKALIKES_FILE,
    Drawing,
    load_drawings,
    parse_line,
    read_lookalike_ids,
    write_stroke_file,
)

from .conftest import fixture_strokes


def _other_file_with_hidden_sevens(root: Path, genuine: int, sevens: int) -> Path:
    """unipen_digits with every digit, unipen_other with genuine 'other' shapes plus some 7s."""
    rng = np.random.default_rng(0)
    digits = [
        {
            "id": f"unipen/d{d}/{i}",
            "label": str(d),
            "text": str(d),
            "writer": f"w{i}",
            "strokes": fixture_strokes(str(d), rng),
        }
        for d in range(10)
        for i in range(40)
    ]
    other = [
        {
            "id": f"unipen/o/{i}",
            "label": "other",
            "text": "x",
            "writer": f"w{i}",
            "strokes": fixture_strokes("other", rng),
        }
        for i in range(genuine)
    ] + [
        {
            "id": f"unipen/seven/{i}",
            "label": "other",
            "text": "?",
            "writer": f"s{i}",
            "strokes": fixture_strokes("7", rng),
        }
        for i in range(sevens)
    ]
    write_stroke_file(root / "strokes" / "unipen_digits.jsonl.gz", digits)
    write_stroke_file(root / "strokes" / "unipen_other.jsonl.gz", other)
    return root


@pytest.mark.slow
def test_finder_flags_digits_hidden_in_other_and_keeps_genuine_other(tmp_path: Path) -> None:
    root = _other_file_with_hidden_sevens(tmp_path / "data", genuine=60, sevens=12)
    drawings = load_drawings(root, lookalikes=None)
    search = find_lookalikes(drawings, threshold=0.5, folds=2, epochs=6, batch_size=32, progress=False)
    found = {f.id for f in search.found}
    sevens = {d.id for d in drawings if d.id.startswith("unipen/seven/")}
    assert search.scored == 72
    assert len(found & sevens) >= 10, search.summary()
    assert len(found - sevens) <= 3, search.summary()
    assert {f.digit for f in search.found if f.id in sevens} == {7}

    listing = tmp_path / "lookalikes.txt"
    write_lookalikes(search, listing, "digit-detector data lookalikes --test")
    assert read_lookalike_ids(listing) == found
    kept = load_drawings(root, lookalikes=listing)
    assert {d.id for d in kept} == {d.id for d in drawings} - found
    sheet = lookalike_sheet(search, drawings)
    assert sheet.width > 0 and np.asarray(sheet).min() < 128  # ink was drawn


def test_loader_leaves_out_only_listed_other_drawings(stroke_dir: Path, tmp_path: Path) -> None:
    everything = load_drawings(stroke_dir, lookalikes=None)
    other = next(d for d in everything if d.class_id == OTHER_ID)
    digit = next(d for d in everything if d.class_id == 3)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# header\n{other.id}\t1\t0.9\n{digit.id}\t3\t0.99\n")
    kept = {d.id for d in load_drawings(stroke_dir, lookalikes=listing)}
    assert other.id not in kept
    assert digit.id in kept, "only 'other' drawings are ever left out"
    assert len(kept) == len(everything) - 1


def test_committed_lookalike_list_is_well_formed() -> None:
    lines = OTHER_LOOKALIKES_FILE.read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    assert any("made by: digit-detector data lookalikes" in line for line in header)
    assert len(rows) > 100
    ids = [r[0] for r in rows]
    assert len(set(ids)) == len(ids)
    for row in rows:
        assert len(row) == 3 and row[1] in "0123456789" and 0.5 <= float(row[2]) <= 1.0, row
        assert not row[0].startswith("quickdraw-appendix/"), "censored drawings are never look-alikes"
    assert read_lookalike_ids() == frozenset(ids)


def test_finder_needs_both_digits_and_other() -> None:
    only_digits = [
        parse_line(
            '{"id": "u/1", "label": "1", "text": "1", "writer": null, "strokes": [[[0, 0], [0, 5]]]}',
            "unipen_digits",
        )
    ]
    assert isinstance(only_digits[0], Drawing)
    with pytest.raises(ValueError, match="both digit and 'other'"):
        find_lookalikes(only_digits, progress=False)
