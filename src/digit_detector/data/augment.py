"""Augmentation in stroke space (before rendering), so every box stays exact, plus light raster
noise after rendering. The eval pipeline is `resample` alone; training adds the other steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StrokeAugment:
    """Ranges of the random stroke-space transforms; all distances are fractions of the
    drawing's longer side (drawings are normalised to span 1)."""

    rotation_deg: float = 12.0
    shear: float = 0.25
    log_aspect: float = 0.25
    jitter: float = 0.004
    smooth_prob: float = 0.5
    drop_tiny_stroke_prob: float = 0.15
    tiny_stroke_size: float = 0.06


def resample(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """Points every `spacing` along the polyline (first and last point kept); dots stay dots."""
    if len(stroke) < 2:
        return stroke
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(dist[-1])
    if total <= spacing:
        return stroke[[0, -1]] if total > 0 else stroke[:1]
    n = int(np.ceil(total / spacing)) + 1
    at = np.linspace(0.0, total, n)
    return np.stack([np.interp(at, dist, stroke[:, 0]), np.interp(at, dist, stroke[:, 1])], 1).astype(
        np.float32
    )


def smooth(stroke: np.ndarray) -> np.ndarray:
    """3-tap moving average that keeps the end points (removes staircase quantisation)."""
    if len(stroke) < 3:
        return stroke
    out = stroke.copy()
    out[1:-1] = (stroke[:-2] + stroke[1:-1] + stroke[2:]) / 3
    return out


def augment_strokes(
    strokes: list[np.ndarray], rng: np.random.Generator, aug: StrokeAugment
) -> list[np.ndarray]:
    """Random affine (rotation, shear, aspect), jitter, smoothing and tiny-stroke dropping;
    returns strokes re-normalised to span 1 on the longer side. Works on all points at once
    (one matrix product for the whole drawing): this runs for every object of every scene."""
    if aug.drop_tiny_stroke_prob and len(strokes) > 2 and rng.random() < aug.drop_tiny_stroke_prob:
        sizes = [float(np.ptp(s, axis=0).max()) if len(s) > 1 else 0.0 for s in strokes]
        tiny = [i for i, size in enumerate(sizes) if size < aug.tiny_stroke_size]
        if tiny and len(tiny) < len(strokes):
            drop = tiny[int(rng.integers(len(tiny)))]
            strokes = [s for i, s in enumerate(strokes) if i != drop]
    angle = np.deg2rad(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    cos, sin = np.cos(angle), np.sin(angle)
    aspect = np.exp(rng.uniform(-aug.log_aspect, aug.log_aspect))
    shear = rng.uniform(-aug.shear, aug.shear)
    matrix = (
        np.array([[cos, -sin], [sin, cos]])
        @ np.array([[1.0, shear], [0.0, 1.0]])
        @ np.diag([np.sqrt(aspect), 1 / np.sqrt(aspect)])
    ).astype(np.float32)
    lengths = [len(s) for s in strokes]
    points = (np.concatenate(strokes) - 0.5) @ matrix.T
    if aug.jitter:
        points += rng.normal(0.0, aug.jitter, points.shape).astype(np.float32)
    if rng.random() < aug.smooth_prob and len(points) > 2:
        # 3-tap moving average on every point that is not a stroke's first or last.
        ends = np.zeros(len(points), dtype=bool)
        starts = np.cumsum([0, *lengths[:-1]])
        ends[starts] = True
        ends[starts + np.array(lengths) - 1] = True
        inner = np.flatnonzero(~ends)
        points[inner] = (points[inner - 1] + points[inner] + points[inner + 1]) / 3
    points -= points.min(axis=0)
    points /= max(float(points.max()), 1e-6)
    return np.split(points, np.cumsum(lengths)[:-1])


@dataclass(frozen=True)
class RasterNoise:
    """Light pixel-level noise after rendering: ink and paper tone, gaussian noise, blur-free.
    Applied to the canvas image; boxes are unaffected (the ink does not move)."""

    prob: float = 0.3
    max_paper_drop: int = 20
    max_ink_lift: int = 60
    max_sigma: float = 6.0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return image
        paper = 255 - int(rng.integers(0, self.max_paper_drop + 1))
        ink = int(rng.integers(0, self.max_ink_lift + 1))
        out = ink + image.astype(np.float32) * ((paper - ink) / 255.0)
        sigma = rng.uniform(0, self.max_sigma)
        if sigma > 0.5:
            out += rng.normal(0.0, sigma, image.shape).astype(np.float32)
        return out.clip(0, 255).astype(np.uint8)
