"""Augmentation in stroke space (before rendering), so every box stays exact, plus light raster
noise after rendering. The eval pipeline is resampling alone (`Polylines.resample`); training
adds the other steps."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .polylines import Polylines


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


def drop_tiny_stroke(ink: Polylines, rng: np.random.Generator, aug: StrokeAugment) -> Polylines:
    """Sometimes leave out one tiny stroke (a dot or a short tick) of a many-stroke drawing."""
    if not aug.drop_tiny_stroke_prob or len(ink) <= 2 or rng.random() >= aug.drop_tiny_stroke_prob:
        return ink
    tiny = np.flatnonzero(ink.stroke_sizes() < aug.tiny_stroke_size)
    if not 0 < len(tiny) < len(ink):
        return ink
    return ink.without_stroke(int(tiny[int(rng.integers(len(tiny)))]))


def augment_drawings(
    ink: Polylines, per_drawing: np.ndarray, rng: np.random.Generator, aug: StrokeAugment
) -> Polylines:
    """A random affine (rotation, shear, aspect) per drawing, per-point jitter and, for some
    drawings, smoothing, for several normalised drawings held in one Polylines (`per_drawing`:
    each drawing's point count, see `Polylines.points_per_drawing`). The result is
    not re-normalised (`Polylines.fit_each` does that). All drawings of a scene go through
    here together: one numpy call per step, not one per drawing."""
    u_angle, u_aspect, u_shear, u_smooth = rng.random((4, len(per_drawing)))
    angle = np.deg2rad(aug.rotation_deg * (2 * u_angle - 1))
    cos, sin = np.cos(angle), np.sin(angle)
    root_aspect = np.exp(aug.log_aspect * (2 * u_aspect - 1) / 2)
    shear = aug.shear * (2 * u_shear - 1)
    # rotation @ shear @ diag(sqrt(aspect), 1 / sqrt(aspect)), multiplied out, one per drawing
    matrices = np.stack(
        [
            cos * root_aspect,
            (cos * shear - sin) / root_aspect,
            sin * root_aspect,
            (sin * shear + cos) / root_aspect,
        ],
        axis=1,
    ).astype(np.float32)
    m = np.repeat(matrices, per_drawing, axis=0)
    x, y = ink.points[:, 0] - np.float32(0.5), ink.points[:, 1] - np.float32(0.5)
    points = np.stack([m[:, 0] * x + m[:, 1] * y, m[:, 2] * x + m[:, 3] * y], axis=1)
    if aug.jitter:
        points += rng.standard_normal(points.shape, dtype=np.float32) * np.float32(aug.jitter)
    smoothed = np.repeat(u_smooth < aug.smooth_prob, per_drawing)
    if smoothed.any():
        # 3-tap moving average on every point of a smoothed drawing that is not a stroke's end.
        starts = ink.starts()
        smoothed[starts] = False
        smoothed[starts + ink.lengths - 1] = False
        average = (points[:-2] + points[1:-1] + points[2:]) / 3
        points[1:-1] = np.where(smoothed[1:-1, None], average, points[1:-1])
    return ink.moved(points)


@dataclass(frozen=True)
class RasterNoise:
    """Light pixel-level noise after rendering: ink and paper tone, gaussian noise, blur-free.
    Applied to the canvas image; boxes are unaffected (the ink does not move)."""

    prob: float = 0.3
    max_paper_drop: int = 20
    max_ink_lift: int = 60
    max_sigma: float = 6.0
    bank_size: int = 1024  # side of the fixed field of unit normals that noise is cut from

    @cached_property
    def _bank(self) -> np.ndarray:
        # Drawing fresh normals costs ~0.45 ms per 192x192 image, more than rendering the
        # scene; a random window of one fixed field (and a random flip) costs ~10 us.
        return np.random.default_rng(0).standard_normal((self.bank_size, self.bank_size), dtype=np.float32)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return image
        paper = 255 - int(rng.integers(0, self.max_paper_drop + 1))
        ink = int(rng.integers(0, self.max_ink_lift + 1))
        out = image.astype(np.float32) * np.float32((paper - ink) / 255.0) + np.float32(ink)
        sigma = rng.uniform(0, self.max_sigma)
        if sigma > 0.5:
            out += self._unit_noise(image.shape, rng) * np.float32(sigma)
        return out.clip(0, 255, out=out).astype(np.uint8)

    def _unit_noise(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        height, width = shape
        if height > self.bank_size or width > self.bank_size:
            return rng.standard_normal((height, width), dtype=np.float32)
        room = [self.bank_size - height + 1, self.bank_size - width + 1, 2, 2]
        y, x, flip_y, flip_x = rng.integers(0, room)
        window = self._bank[y : y + height, x : x + width]
        return window[:: 1 - 2 * int(flip_y), :: 1 - 2 * int(flip_x)]
