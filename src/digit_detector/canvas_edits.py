"""Edits of the drawing canvas's Fabric.js JSON (`st_canvas(...).json_data`), which the app
feeds back as `initial_drawing`: undo the last stroke, keep the drawing when the canvas is
resized. Plain dicts in, new dicts out; no Streamlit here, so the edits are unit-tested."""

from __future__ import annotations

import copy
from typing import Any

Drawing = dict[str, Any]
RELOAD_KEY = "reload"  # a counter: the canvas reloads its initial drawing when the JSON differs


def strokes(drawing: Drawing | None) -> list[dict[str, Any]]:
    return list((drawing or {}).get("objects") or [])


def _with_objects(drawing: Drawing | None, objects: list[dict[str, Any]]) -> Drawing:
    out = {k: v for k, v in (drawing or {}).items() if k != "objects"}
    out["objects"] = objects
    out[RELOAD_KEY] = int(out.get(RELOAD_KEY, 0)) + 1  # never equal to the drawing it replaces
    return out


def without_last_stroke(drawing: Drawing | None) -> Drawing:
    """The drawing minus its most recent object (strokes are stored in drawing order)."""
    return _with_objects(drawing, copy.deepcopy(strokes(drawing)[:-1]))


def scaled(drawing: Drawing | None, factor: float) -> Drawing:
    """Every object moved and scaled about the top-left corner by `factor` (strokes get
    thicker or thinner with it, as the picture would)."""
    if not factor > 0:
        raise ValueError(f"scale factor must be positive, got {factor}")
    objects = []
    for obj in copy.deepcopy(strokes(drawing)):
        for key in ("left", "top"):
            obj[key] = float(obj.get(key, 0.0)) * factor
        for key in ("scaleX", "scaleY"):
            obj[key] = float(obj.get(key, 1.0)) * factor
        objects.append(obj)
    return _with_objects(drawing, objects)


def resize_factor(old: tuple[int, int], new: tuple[int, int]) -> float:
    """The uniform scale that fits a drawing made on `old` (width, height) into `new`."""
    return min(new[0] / old[0], new[1] / old[1])
