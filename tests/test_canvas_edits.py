"""Undo and resize edits of the canvas drawing JSON."""

from __future__ import annotations

from typing import Any

import pytest

from digit_detector.canvas_edits import RELOAD_KEY, resize_factor, scaled, strokes, without_last_stroke
from digit_detector.feedback.review import describe_position

DRAWING: dict[str, Any] = {
    "version": "6.0",
    "objects": [
        {"type": "path", "left": 10.0, "top": 20.0, "scaleX": 1.0, "scaleY": 1.0, "path": [["M", 0, 0]]},
        {"type": "path", "left": 100.0, "top": 50.0, "path": [["M", 1, 1]]},
    ],
}


def test_undo_drops_the_most_recent_stroke_and_forces_a_reload() -> None:
    once = without_last_stroke(DRAWING)
    assert [o["left"] for o in strokes(once)] == [10.0]
    assert once["version"] == "6.0" and once[RELOAD_KEY] == 1
    twice = without_last_stroke(once)
    assert strokes(twice) == [] and twice[RELOAD_KEY] == 2  # never equal to what it replaces
    assert strokes(without_last_stroke(None)) == []
    assert len(strokes(DRAWING)) == 2  # the input is not changed


def test_resize_scales_positions_and_sizes() -> None:
    assert resize_factor((400, 400), (340, 340)) == pytest.approx(0.85)
    assert resize_factor((700, 300), (400, 400)) == pytest.approx(400 / 700)
    small = scaled(DRAWING, 0.5)
    first, second = strokes(small)
    assert (first["left"], first["top"], first["scaleX"], first["scaleY"]) == (5.0, 10.0, 0.5, 0.5)
    assert (second["left"], second["top"], second["scaleX"], second["scaleY"]) == (50.0, 25.0, 0.5, 0.5)
    assert DRAWING["objects"][0]["left"] == 10.0
    with pytest.raises(ValueError, match="positive"):
        scaled(DRAWING, 0.0)


@pytest.mark.parametrize(
    ("box", "words"),
    [
        ((0, 0, 30, 30), "top left"),
        ((180, 10, 220, 40), "top middle"),
        ((180, 180, 220, 220), "middle"),
        ((350, 180, 390, 220), "middle right"),
        ((350, 350, 390, 390), "bottom right"),
    ],
)
def test_missed_ink_is_named_by_where_it_is(box: tuple[float, float, float, float], words: str) -> None:
    assert describe_position(box, (400, 400)) == words
