"""Procedural "other" drawings: shapes visitors draw that the recorded sets lack or hold out.

Smileys, hearts, suns, balls, stars, arrows and short dashes were pixelated as obscene or read
as digits by earlier weights. The Quick, Draw! category "smiley face" is held out (shared data
README), so these are generated, wobbly like a mouse drawing, and used for training only
(`Drawing.synthetic`). A lone circle is not generated: it is a fair "0".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..classes import OTHER_ID
from .polylines import Polylines
from .strokes import Drawing, load_drawings, normalise

SOURCE = "other_procedural"
Strokes = list[np.ndarray]


def _wobbly(points: np.ndarray, rng: np.random.Generator, amount: float = 0.015) -> np.ndarray:
    """Low-frequency hand tremor: a smooth random offset along the stroke."""
    n = len(points)
    knots = max(2, n // 6)
    offsets = rng.normal(0.0, amount, (knots, 2))
    t = np.linspace(0, knots - 1, n)
    smooth = np.stack([np.interp(t, np.arange(knots), offsets[:, k]) for k in range(2)], axis=1)
    return (points + smooth).astype(np.float32)


def _circle(
    cx: float, cy: float, r: float, rng: np.random.Generator, start: float = 0.0, turn: float = 1.0
) -> np.ndarray:
    t = start + np.linspace(0, 2 * np.pi * turn, 40)
    squash = rng.uniform(0.85, 1.15)
    return np.stack([cx + r * np.cos(t) * squash, cy + r * np.sin(t) / squash], axis=1)


def smiley(rng: np.random.Generator) -> Strokes:
    face = _circle(0.5, 0.5, 0.5, rng, rng.uniform(0, 6.3), rng.uniform(1.0, 1.08))
    eye_y = rng.uniform(0.3, 0.4)
    eyes = [
        np.array([[x, eye_y], [x + rng.uniform(-0.01, 0.01), eye_y + rng.uniform(0, 0.08)]])
        for x in (0.33, 0.67)
    ]
    t = np.linspace(0.15 * np.pi, 0.85 * np.pi, 16)
    depth = rng.uniform(0.1, 0.25) * rng.choice([1, 1, 1, -1])  # mostly smiling, sometimes sad
    mouth = np.stack([0.5 + 0.28 * np.cos(t), 0.62 + depth * np.sin(t)], axis=1)
    return [face, *eyes, mouth]


def heart(rng: np.random.Generator) -> Strokes:
    t = np.linspace(0, 2 * np.pi, 48)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [np.stack([x, y * rng.uniform(0.85, 1.1)], axis=1)]


def sun(rng: np.random.Generator) -> Strokes:
    r = rng.uniform(0.22, 0.3)
    strokes = [_circle(0.5, 0.5, r, rng)]
    rays = int(rng.integers(6, 13))
    for a in np.linspace(0, 2 * np.pi, rays, endpoint=False) + rng.uniform(0, 1):
        inner, outer = r + 0.05, rng.uniform(0.42, 0.5)
        strokes.append(
            np.array(
                [
                    [0.5 + inner * np.cos(a), 0.5 + inner * np.sin(a)],
                    [0.5 + outer * np.cos(a), 0.5 + outer * np.sin(a)],
                ]
            )
        )
    return strokes


def ball(rng: np.random.Generator) -> Strokes:
    """A circle with seams: a chord across and a curved seam from top to bottom."""
    t = np.linspace(-np.pi / 2, np.pi / 2, 16)
    bend = rng.uniform(-0.2, 0.2)
    seam = np.stack([0.5 + bend * np.cos(t), 0.5 + 0.5 * np.sin(t)], axis=1)
    return [_circle(0.5, 0.5, 0.5, rng), seam, np.array([[0.02, 0.5], [0.98, 0.5]])]


def star(rng: np.random.Generator) -> Strokes:
    points = int(rng.choice([5, 5, 5, 6]))
    angles = -np.pi / 2 + np.arange(2 * points + 1) * np.pi / points + rng.uniform(-0.3, 0.3)
    radius = np.where(np.arange(2 * points + 1) % 2 == 0, 0.5, rng.uniform(0.18, 0.28))
    outline = np.stack([0.5 + radius * np.cos(angles), 0.5 + radius * np.sin(angles)], axis=1)
    if rng.random() < 0.4:  # the one-stroke pentagram
        order = (np.arange(6) * 2) % 5
        a = -np.pi / 2 + order * 2 * np.pi / 5
        outline = np.stack([0.5 + 0.5 * np.cos(a), 0.5 + 0.5 * np.sin(a)], axis=1)
    return [outline]


def arrow(rng: np.random.Generator) -> Strokes:
    length = 1.0
    head = rng.uniform(0.15, 0.3)
    shaft = np.array([[0.0, 0.0], [length, 0.0]])
    barbs = [np.array([[length - head, side * head * 0.7], [length, 0.0]]) for side in (-1, 1)]
    strokes = [shaft, *barbs]
    angle = rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2, np.pi / 4, -np.pi / 4, 3 * np.pi / 4])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return [s @ rot.T for s in strokes]


def dash(rng: np.random.Generator) -> Strokes:
    """A short near-horizontal mark (a vertical bar would be a fair "1")."""
    n = int(rng.integers(2, 6))
    x = np.linspace(0, 1, n)
    y = rng.normal(0, 0.02, n) + x * np.tan(np.deg2rad(rng.uniform(-20, 20)))
    return [np.stack([x, y], axis=1)]


SHAPES: dict[str, Callable[[np.random.Generator], Strokes]] = {
    "smiley": smiley,
    "heart": heart,
    "sun": sun,
    "ball": ball,
    "star": star,
    "arrow": arrow,
    "dash": dash,
}


def procedural_others(count_per_shape: int = 300, seed: int = 0) -> list[Drawing]:
    """`count_per_shape` drawings of every shape in SHAPES, as training-only "other" drawings."""
    rng = np.random.default_rng(seed)
    drawings = []
    for name, make in SHAPES.items():
        for i in range(count_per_shape):
            strokes = [_wobbly(np.asarray(s, dtype=np.float32), rng) for s in make(rng)]
            drawings.append(
                Drawing(
                    id=f"{SOURCE}/{name}/{i}",
                    class_id=OTHER_ID,
                    source=SOURCE,
                    writer=None,
                    ink=Polylines.from_strokes(normalise(strokes)),
                    synthetic=True,
                    category=name,
                )
            )
    return drawings


def training_drawings(data_dir: str | Path | None = None, limit_per_file: int | None = None) -> list[Drawing]:
    """Every drawing `train` reads (split into training and validation there): the stroke files
    plus the procedural shapes, whose ids and strokes are the same on every call, so a
    hard-examples file (`digit-detector mine`) names the drawings training draws."""
    return load_drawings(data_dir, limit_per_file=limit_per_file) + procedural_others()
