"""Several strokes held as ONE point array plus each stroke's point count.

The composer touches every object of every scene; with strokes (and several drawings) in one
array, resampling, augmenting, moving and rendering cost a handful of numpy calls per layout
step instead of a handful per stroke of every object (data generation must outrun training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Polylines:
    points: np.ndarray  # (P, 2) float32, every stroke's points in drawing order
    lengths: np.ndarray  # (K,) int64, points per stroke, each >= 1, sum P

    @classmethod
    def empty(cls) -> Polylines:
        return cls(np.zeros((0, 2), np.float32), np.zeros(0, np.int64))

    @classmethod
    def from_strokes(cls, strokes: Sequence[np.ndarray]) -> Polylines:
        arrays = [np.asarray(s, dtype=np.float32).reshape(-1, 2) for s in strokes]
        arrays = [a for a in arrays if len(a)]
        if not arrays:
            return cls.empty()
        return cls(np.concatenate(arrays), np.array([len(a) for a in arrays], dtype=np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Polylines]) -> Polylines:
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.points for p in parts]), np.concatenate([p.lengths for p in parts]))

    def __len__(self) -> int:
        """Number of strokes."""
        return len(self.lengths)

    def starts(self) -> np.ndarray:
        """Index of each stroke's first point."""
        return np.cumsum(self.lengths) - self.lengths

    def strokes(self) -> list[np.ndarray]:
        return np.split(self.points, np.cumsum(self.lengths)[:-1])

    def moved(self, points: np.ndarray) -> Polylines:
        """The same strokes with new point coordinates (same count and order)."""
        return Polylines(points, self.lengths)

    def stroke_sizes(self) -> np.ndarray:
        """Longer side of each stroke's point box."""
        starts = self.starts()
        span = np.maximum.reduceat(self.points, starts) - np.minimum.reduceat(self.points, starts)
        return np.asarray(span.max(axis=1))

    def without_stroke(self, index: int) -> Polylines:
        start = int(self.lengths[:index].sum())
        stop = start + int(self.lengths[index])
        return Polylines(
            np.concatenate([self.points[:start], self.points[stop:]]), np.delete(self.lengths, index)
        )

    def resample(self, spacing: float | np.ndarray) -> Polylines:
        """Points every `spacing` (one value, or one per stroke) along each stroke: first and
        last point kept, a stroke no longer than `spacing` keeps its two ends, dots stay dots."""
        if len(self.points) == 0:
            return self
        starts = self.starts()
        ends = starts + self.lengths - 1
        seg = np.linalg.norm(np.diff(self.points.astype(np.float64), axis=0), axis=1)
        # The jump from one stroke's end to the next one's start becomes a gap of length 1 in
        # `arc`, so one np.interp over all strokes never mixes two of them.
        seg[starts[1:] - 1] = 1.0
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        totals = arc[ends] - arc[starts]
        counts = np.where(totals > 0, np.ceil(totals / spacing) + 1, 1).astype(np.int64)
        stroke_of = np.repeat(np.arange(len(counts)), counts)
        first = np.cumsum(counts) - counts
        step = (np.arange(int(counts.sum())) - first[stroke_of]) / np.maximum(counts - 1, 1)[stroke_of]
        at = arc[starts][stroke_of] + step * totals[stroke_of]
        points = np.stack(
            [np.interp(at, arc, self.points[:, 0]), np.interp(at, arc, self.points[:, 1])], axis=1
        )
        return Polylines(points.astype(np.float32), counts)

    # -- several drawings in one Polylines: drawing g owns the next strokes_per_drawing[g] strokes
    # (and points_per_drawing[g] points; computed once per batch, it holds while only the
    # coordinates change)

    def points_per_drawing(self, strokes_per_drawing: np.ndarray) -> np.ndarray:
        first_stroke = np.cumsum(strokes_per_drawing) - strokes_per_drawing
        return np.add.reduceat(self.lengths, first_stroke)

    def fit_each(self, per_drawing: np.ndarray, sides: np.ndarray) -> tuple[Polylines, np.ndarray]:
        """Each drawing (`per_drawing`: its point count) moved to start at (0, 0) and scaled so
        its longer side is `sides[g]`; also returns each drawing's (width, height) after scaling."""
        first = np.cumsum(per_drawing) - per_drawing
        lo = np.minimum.reduceat(self.points, first)
        extent = np.maximum.reduceat(self.points, first) - lo
        scale = (sides / np.maximum(extent.max(axis=1), 1e-6)).astype(np.float32)
        owner = np.repeat(np.arange(len(per_drawing)), per_drawing)
        points = (self.points - lo[owner]) * scale[owner, None]
        return Polylines(points, self.lengths), extent * scale[:, None]

    def split_each(self, strokes_per_drawing: np.ndarray, points_per_drawing: np.ndarray) -> list[Polylines]:
        stroke_ends = np.cumsum(strokes_per_drawing).tolist()
        point_ends = np.cumsum(points_per_drawing).tolist()
        stroke_starts, point_starts = [0, *stroke_ends[:-1]], [0, *point_ends[:-1]]
        return [
            Polylines(self.points[p0:p1], self.lengths[s0:s1])
            for s0, s1, p0, p1 in zip(stroke_starts, stroke_ends, point_starts, point_ends, strict=True)
        ]
