"""Scene composer: draws canvases the way the app's canvas does (white paper, black anti-aliased
round-capped strokes), from real stroke recordings, with the exact box of every object's ink.

Boxes are (x1, y1, x2, y2) in canvas pixels, continuous coordinates (pixel i covers [i, i+1)).
A round-capped polyline of width w is the set of points within w/2 of its points, so its ink
box is exactly the points' box grown by w/2 on every side: no rendering is needed to know it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..classes import CENSORED_ID, CLASS_NAMES, DIGIT_IDS, NUM_CLASSES, OTHER_ID
from ..preprocess import INPUT_SIZE, Letterbox, letterbox_gray, normalise_ink
from .augment import RasterNoise, StrokeAugment, augment_drawings, drop_tiny_stroke
from .polylines import Polylines
from .strokes import Drawing

_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn at 1/16 px precision
_ONE = 1 << _SHIFT
_SPACINGS = (0.012, 0.018, 0.027)  # point spacing, fraction of the drawing's longer side
_SPECK_WIDTH = 6.0  # widest speck of a "nearly empty" canvas, canvas px


@dataclass(frozen=True)
class SceneConfig:
    """What kind of canvases to draw. Weights need not sum to 1."""

    # Desktop square most often; wide and tall desktop canvases; phone-sized canvases; large
    # canvases of a full-HD screen (uploads and wide windows), where a mouse stroke is 1-3 px.
    canvas_sizes: tuple[tuple[int, int], ...] = (
        (400, 400),
        (600, 400),
        (700, 250),
        (800, 300),
        (350, 600),
        (250, 700),
        (340, 340),
        (1050, 800),
        (1100, 600),
        (900, 900),
        (1100, 400),
    )
    canvas_weights: tuple[float, ...] = (0.42, 0.09, 0.07, 0.05, 0.09, 0.04, 0.1, 0.05, 0.03, 0.03, 0.03)
    stroke_width: tuple[float, float] = (2.0, 32.0)  # the app slider's range, canvas px
    # On canvases whose longer side reaches `large_canvas`, this share of scenes has thin strokes.
    large_canvas: int = 900
    thin_stroke_share: float = 0.5
    thin_stroke_width: tuple[float, float] = (1.0, 3.0)
    kinds: tuple[str, ...] = ("single", "number", "scatter", "mixed", "blank", "specks")
    kind_weights: tuple[float, ...] = (0.42, 0.25, 0.13, 0.12, 0.04, 0.04)
    # Per-object class mix: digits, other, censored.
    digit_weight: float = 0.62
    other_weight: float = 0.26
    censored_weight: float = 0.12
    # (digit, other, censored) weights of the lone drawing of "single" scenes; None: the mix
    # above. A lone doodle fills the frame in serving (`Letterbox.around_ink`), a size at which
    # doodles and obscene drawings are otherwise rare in training: mostly small, among others.
    single_mix: tuple[float, float, float] | None = None
    # Relative weight of a digit among digits (others 1.0), in single objects and numbers alike;
    # none here: evaluation scenes draw every digit equally often (training: TRAINING_SCENES).
    digit_emphasis: tuple[tuple[str, float], ...] = ()
    # Share of each class's samples per source (the rest of the class: sqrt(count) weighting).
    # Doodles are over half of "other", so doodles of "other" appear more often than censored
    # doodles and the doodle style alone cannot tell the two classes apart.
    source_shares: tuple[tuple[str, float], ...] = (
        ("quickdraw_other", 0.22),
        ("quickdraw_more_other", 0.26),
        ("quickdraw_hard_negatives", 0.08),
        ("other_procedural", 0.08),
        # Real obscene doodles are messier than the generated ones and are what visitors draw.
        ("censored_procedural", 0.35),
    )
    min_object_input_px: float = 10.0  # smallest object side after letterboxing, input pixels
    input_size: int = INPUT_SIZE
    # Digit height range of "number" layouts in canvas px (None: from the canvas and the row).
    number_digit_height: tuple[float, float] | None = None


# Training draws the digits it confuses most more often: "1" and "7" (a flagged 1 looks like a 7),
# and "0" (read as "other" when round). Its single scenes keep the object mix: more lone doodles
# and obscene drawings (single_mix 0.45 / 0.33 / 0.22, run 14) read fewer doodles as digits, more
# lone "other" doodles only (0.45 / 0.43 / 0.12, run 15) pixelated fewer doodles and fewer obscene
# ones; neither separated the two classes better (weights/README.md).
TRAINING_SCENES = SceneConfig(digit_emphasis=(("1", 1.6), ("7", 1.4), ("0", 1.2)))
# One drawing alone on a 400x400 canvas: `report`'s single-doodle groups, hard-example mining.
LONE_DRAWING_SCENES = SceneConfig(
    canvas_sizes=((400, 400),), canvas_weights=(1.0,), kinds=("single",), kind_weights=(1.0,)
)


@dataclass
class Scene:
    image: np.ndarray  # (H, W) uint8, white paper, dark ink
    boxes: np.ndarray  # (N, 4) float32, canvas pixels
    class_ids: np.ndarray  # (N,) int64
    stroke_width: float = 0.0


@dataclass
class PlacedObject:
    class_id: int
    ink: Polylines  # canvas pixel coordinates
    box: np.ndarray  # (4,) box of the points; the ink box adds the stroke radius (Layout.boxes)


@dataclass(frozen=True)
class Space:
    """What a layout works within: the canvas, the smallest legible object, the pen width."""

    width: int
    height: int
    min_side: float
    stroke_width: float


@dataclass
class Layout:
    """A scene before rendering: canvas size, objects in canvas pixels, one stroke width."""

    width: int
    height: int
    objects: list[PlacedObject]
    stroke_width: int
    specks: list[np.ndarray]  # unlabelled dots ("nearly empty" canvases)

    def boxes(self) -> np.ndarray:
        """Ink boxes: each object's point box grown by the stroke radius (round caps)."""
        r = self.stroke_width / 2
        grow = np.array([-r, -r, r, r])
        return np.array([o.box + grow for o in self.objects], dtype=np.float32).reshape(-1, 4)

    def class_ids(self) -> np.ndarray:
        return np.array([o.class_id for o in self.objects], dtype=np.int64)

    def ink_box(self) -> np.ndarray | None:
        """The box of all ink, labelled or not (specks), None for a blank canvas: what
        `preprocess.ink_box` finds on the rendered canvas, without rendering it."""
        boxes = [self.boxes()]
        if self.specks:
            r = min(self.stroke_width, _SPECK_WIDTH) / 2
            points = np.concatenate(self.specks)
            boxes.append(np.concatenate([points.min(axis=0) - r, points.max(axis=0) + r])[None])
        every = np.concatenate(boxes)
        if len(every) == 0:
            return None
        return np.concatenate([every[:, :2].min(axis=0), every[:, 2:].max(axis=0)])


def render_layout(
    layout: Layout, scale_x: float, scale_y: float, offset: tuple[float, float], shape: tuple[int, int]
) -> np.ndarray:
    """Draw the layout's strokes, mapped by `canvas * scale + offset`, onto white paper."""
    image = np.full(shape, 255, dtype=np.uint8)
    scale = np.array([scale_x, scale_y], dtype=np.float32)
    shift = np.array(offset, dtype=np.float32)
    ink = Polylines.concat([o.ink for o in layout.objects])
    width = layout.stroke_width * min(scale_x, scale_y)
    draw_polylines(image, ink.moved(ink.points * scale + shift), width)
    if layout.specks:
        specks = Polylines.from_strokes(layout.specks)
        draw_polylines(image, specks.moved(specks.points * scale + shift), min(width, _SPECK_WIDTH * scale_x))
    return image


class Categorical:
    """Draws an index with fixed probabilities: `rng.choice(n, p=...)` costs ~16 us a call,
    a cumulative table and bisect ~1 us, and the composer draws several per object."""

    def __init__(self, weights: Sequence[float] | np.ndarray) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if len(w) == 0 or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {list(w)}")
        self._cdf = np.cumsum(w / w.sum()).tolist()

    def sample(self, rng: np.random.Generator) -> int:
        return min(bisect.bisect_right(self._cdf, rng.random()), len(self._cdf) - 1)


class DrawingPool:
    """Drawings grouped by class; each class samples a source, then a drawing within it:
    uniformly, or by `emphasis` (drawing id -> sampling weight, 1 for a drawing not named:
    hard examples, `hard_examples.py`). A source named in `shares` takes that share of its
    class's samples; the others split the rest with weight sqrt(count), so a small source is
    not drowned by a large one. Emphasis moves samples between a source's drawings, never
    between sources or classes."""

    def __init__(
        self,
        drawings: Sequence[Drawing],
        shares: Mapping[str, float] | None = None,
        emphasis: Mapping[str, float] | None = None,
    ) -> None:
        by_class: dict[int, dict[str, list[Drawing]]] = {}
        for d in drawings:
            by_class.setdefault(d.class_id, {}).setdefault(d.source, []).append(d)
        self._sources: dict[int, list[list[Drawing]]] = {}
        self._pick_source: dict[int, Categorical] = {}
        self._pick_drawing: dict[tuple[int, int], Categorical] = {}
        self.emphasised = sum(d.id in emphasis for d in drawings) if emphasis else 0
        for class_id, sources in by_class.items():
            names = sorted(sources)
            self._sources[class_id] = [sources[name] for name in names]
            self._pick_source[class_id] = Categorical(source_weights(names, sources, shares or {}))
            for index, group in enumerate(self._sources[class_id]):
                if emphasis and any(d.id in emphasis for d in group):
                    weights = [emphasis.get(d.id, 1.0) for d in group]
                    self._pick_drawing[class_id, index] = Categorical(weights)
        self.size = len(drawings)

    def classes(self) -> set[int]:
        return set(self._sources)

    def sample(self, class_id: int, rng: np.random.Generator) -> Drawing:
        index = self._pick_source[class_id].sample(rng)
        group = self._sources[class_id][index]
        weighted = self._pick_drawing.get((class_id, index))
        if weighted is not None:
            return group[weighted.sample(rng)]
        return group[int(rng.random() * len(group))]


def source_weights(
    names: Sequence[str], sources: Mapping[str, Sequence[Drawing]], shares: Mapping[str, float]
) -> np.ndarray:
    """Sampling weights of one class's sources (see DrawingPool)."""
    fixed = {n: shares[n] for n in names if n in shares}
    if sum(fixed.values()) > 1.0 + 1e-9:
        raise ValueError(f"source shares of one class add up to more than 1: {fixed}")
    rest = [n for n in names if n not in fixed]
    if not rest:
        return np.array([fixed[n] for n in names])
    root = {n: math.sqrt(len(sources[n])) for n in rest}
    left = 1.0 - sum(fixed.values())
    total = sum(root.values())
    return np.array([fixed[n] if n in fixed else left * root[n] / total for n in names])


@dataclass(frozen=True)
class ClassMix:
    """Draws a class id with fixed probabilities."""

    ids: list[int]
    pick: Categorical

    @classmethod
    def of(
        cls,
        available: set[int],
        digits: list[int],
        digit_shares: list[float],
        mix: tuple[float, float, float],
    ) -> ClassMix:
        """The classes of `available`: `mix` = (digit, other, censored) weights, the digit
        weight split by `digit_shares`."""
        digit_weight, other_weight, censored_weight = mix
        total = sum(digit_shares)
        weights = {d: digit_weight * share / total for d, share in zip(digits, digit_shares, strict=True)}
        if OTHER_ID in available:
            weights[OTHER_ID] = other_weight
        if CENSORED_ID in available:
            weights[CENSORED_ID] = censored_weight
        if not weights:
            raise ValueError("the drawing pool is empty")
        return cls(list(weights), Categorical(list(weights.values())))

    def sample(self, rng: np.random.Generator) -> int:
        return self.ids[self.pick.sample(rng)]


@dataclass
class SceneComposer:
    pool: DrawingPool
    config: SceneConfig = field(default_factory=SceneConfig)
    augment: StrokeAugment | None = None  # None: the eval pipeline (no stroke augmentation)
    noise: RasterNoise | None = None

    @classmethod
    def from_drawings(
        cls,
        drawings: Sequence[Drawing],
        config: SceneConfig | None = None,
        augment: StrokeAugment | None = None,
        noise: RasterNoise | None = None,
        emphasis: Mapping[str, float] | None = None,
    ) -> SceneComposer:
        """A composer over `drawings`, sampling sources with the config's shares (and drawings
        by `emphasis`, see DrawingPool)."""
        config = config or SceneConfig()
        return cls(DrawingPool(drawings, dict(config.source_shares), emphasis), config, augment, noise)

    @classmethod
    def for_training(
        cls,
        drawings: Sequence[Drawing],
        input_size: int = INPUT_SIZE,
        emphasis: Mapping[str, float] | None = None,
    ) -> SceneComposer:
        """Training's scenes: TRAINING_SCENES drawn into `input_size`, stroke augmentation,
        raster noise (what `train` draws, and `data preview --augment` and `anchors` show);
        hard examples drawn more often by `emphasis`."""
        config = replace(TRAINING_SCENES, input_size=input_size)
        return cls.from_drawings(drawings, config, StrokeAugment(), RasterNoise(), emphasis)

    def __post_init__(self) -> None:
        available = self.pool.classes()
        digits = sorted(DIGIT_IDS & available)
        emphasis = dict(self.config.digit_emphasis)
        if unknown := set(emphasis) - {CLASS_NAMES[d] for d in DIGIT_IDS}:
            raise ValueError(f"digit_emphasis names digits '0'..'9' only, not {sorted(unknown)}")
        digit_shares = [emphasis.get(CLASS_NAMES[d], 1.0) for d in digits]
        cfg = self.config
        mix = (cfg.digit_weight, cfg.other_weight, cfg.censored_weight)
        self._object_classes = ClassMix.of(available, digits, digit_shares, mix)
        self._single_classes = ClassMix.of(available, digits, digit_shares, cfg.single_mix or mix)
        self._digit_ids = digits or self._object_classes.ids
        self._pick_digit = Categorical(digit_shares if digits else [1.0] * len(self._digit_ids))
        self._pick_canvas = Categorical(self.config.canvas_weights)
        self._pick_kind = Categorical(self.config.kind_weights)
        low, high = self.config.stroke_width
        self._log_stroke_width = (math.log(low), math.log(high))

    # -- public -------------------------------------------------------------------------------

    def layout(self, rng: np.random.Generator) -> Layout:
        """Decide the canvas, the objects (strokes in canvas px) and the stroke width."""
        cfg = self.config
        width, height = cfg.canvas_sizes[self._pick_canvas.sample(rng)]
        kind = cfg.kinds[self._pick_kind.sample(rng)]
        # Smallest object side in canvas px such that it is still visible after letterboxing.
        min_side = cfg.min_object_input_px * max(width, height) / cfg.input_size
        wanted_width = math.exp(rng.uniform(*self._log_stroke_width))
        if max(width, height) >= cfg.large_canvas and rng.random() < cfg.thin_stroke_share:
            wanted_width = rng.uniform(*cfg.thin_stroke_width)  # a mouse at full HD
        place = getattr(self, f"_layout_{kind}")
        objects: list[PlacedObject] = place(rng, Space(width, height, min_side, wanted_width))
        stroke_width = self._stroke_width_for(objects, wanted_width)
        specks: list[np.ndarray] = []
        if kind == "specks":
            specks = [
                np.array([[rng.uniform(0, width), rng.uniform(0, height)]], dtype=np.float32)
                for _ in range(int(rng.integers(1, 4)))
            ]
        return Layout(width, height, objects, stroke_width, specks)

    def compose(self, rng: np.random.Generator) -> Scene:
        """A canvas at its full size, exactly as the app would send it (plus raster noise)."""
        layout = self.layout(rng)
        image = self._draw(layout, rng)
        return Scene(image, layout.boxes(), layout.class_ids(), float(layout.stroke_width))

    def compose_letterboxed(self, rng: np.random.Generator) -> Scene:
        """The same scene drawn straight into the model-input square, framed as serving frames
        it (`Letterbox.around_ink`, on the layout's exact ink box instead of the pixels').

        Equivalent to `letterbox_gray(compose(rng).image)` up to the resampling filter (a test
        holds the two together), and ~4x faster because strokes are drawn once, at input size,
        instead of at canvas size and then shrunk. Large canvases are the exception: their
        strokes end up thinner than a pixel, and a sub-pixel line drawn at 192 px does not look
        like a shrunk one, so they are drawn full size and go through `letterbox_gray` itself.
        Boxes are in model-input pixels.
        """
        layout = self.layout(rng)
        size = self.config.input_size
        if max(layout.width, layout.height) >= self.config.large_canvas:
            image, box = letterbox_gray(self._draw(layout, rng), size)
        else:
            box = Letterbox.around_ink(layout.width, layout.height, layout.ink_box(), size)
            # as letterbox_gray does in serving
            image = normalise_ink(self._draw(layout, rng, box))
        boxes = box.to_input(layout.boxes()).astype(np.float32)
        return Scene(image, boxes, layout.class_ids(), float(layout.stroke_width))

    def _draw(self, layout: Layout, rng: np.random.Generator, box: Letterbox | None = None) -> np.ndarray:
        """The layout's strokes on white paper, at canvas size or into `box`'s square, then the
        raster noise."""
        if box is None:
            image = render_layout(layout, 1.0, 1.0, (0.0, 0.0), shape=(layout.height, layout.width))
        else:
            image = render_layout(layout, box.scale_x, box.scale_y, box.offset, shape=(box.size, box.size))
        return image if self.noise is None else self.noise(image, rng)

    # -- layouts: each returns objects with strokes in canvas px and a point box (radius 0) ----

    def _layout_single(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        short = min(space.width, space.height)
        side = rng.uniform(max(space.min_side, 0.18 * short), 0.93 * short)
        class_id = self._single_classes.sample(rng)
        return self._scatter_place(self._objects([(class_id, side)], rng), rng, space)

    def _layout_scatter(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        count = int(rng.integers(2, 6))
        hi = max(space.min_side * 1.2, 0.42 * min(space.width, space.height))
        wanted = [(self._object_classes.sample(rng), rng.uniform(space.min_side, hi)) for _ in range(count)]
        return self._scatter_place(self._objects(wanted, rng), rng, space)

    def _layout_number(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        rows = 1 if rng.random() < 0.75 else 2
        return self._number_rows(rng, space, rows)

    def _layout_mixed(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        placed = self._number_rows(rng, space, 1, max_height=0.45)
        hi = max(space.min_side * 1.2, 0.35 * min(space.width, space.height))
        wanted = [
            ((OTHER_ID, CENSORED_ID)[int(rng.random() * 2)], rng.uniform(space.min_side, hi))
            for _ in range(int(rng.integers(1, 3)))
        ]
        available = self.pool.classes()
        extras = self._objects([w for w in wanted if w[0] in available], rng)
        return self._scatter_place(extras, rng, space, placed=placed)

    def _layout_blank(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        return []

    _layout_specks = _layout_blank  # specks are drawn after layout, with no label

    # -- helpers ------------------------------------------------------------------------------

    def _objects(self, wanted: Sequence[tuple[int, float]], rng: np.random.Generator) -> list[PlacedObject]:
        """A drawing per (class id, longer side in px), points placed with min at (0, 0).

        The drawings of one layout step are resampled, augmented and scaled together, in one
        Polylines: per-object numpy calls were most of the cost of a scene.
        """
        if not wanted:
            return []
        inks = [self.pool.sample(class_id, rng).ink for class_id, _ in wanted]
        if self.augment is not None:
            inks = [drop_tiny_stroke(ink, rng, self.augment) for ink in inks]
            # Point spacing varies in training: a coarse or a dense pen.
            spacing = np.asarray(_SPACINGS)[rng.integers(0, len(_SPACINGS), len(inks))]
        else:
            spacing = np.full(len(inks), _SPACINGS[1])
        strokes_per_drawing = np.array([len(ink) for ink in inks])
        batch = Polylines.concat(inks).resample(np.repeat(spacing, strokes_per_drawing))
        points_per_drawing = batch.points_per_drawing(strokes_per_drawing)
        if self.augment is not None:
            batch = augment_drawings(batch, points_per_drawing, rng, self.augment)
        sides = np.array([side for _, side in wanted])
        batch, sizes = batch.fit_each(points_per_drawing, sides)
        parts = batch.split_each(strokes_per_drawing, points_per_drawing)
        return [
            PlacedObject(class_id, ink, np.array([0.0, 0.0, w, h]))
            for (class_id, _), ink, (w, h) in zip(wanted, parts, sizes.tolist(), strict=True)
        ]

    def _number_rows(
        self, rng: np.random.Generator, space: Space, rows: int, max_height: float = 0.8
    ) -> list[PlacedObject]:
        width, height, min_side, stroke_width = space.width, space.height, space.min_side, space.stroke_width
        placed: list[PlacedObject] = []
        row_tops = np.linspace(0, height, rows + 1)
        for r in range(rows):
            count = int(rng.integers(2, 7))
            band = row_tops[r + 1] - row_tops[r]
            fit_w = width * 0.92 / (count * 0.85)  # digits are ~0.6 as wide as tall, plus gaps
            hi = min(band * max_height, fit_w)
            if self.config.number_digit_height is not None:
                digit_h = rng.uniform(*self.config.number_digit_height)
            else:
                digit_h = rng.uniform(min(min_side, hi), max(min(min_side, hi), hi))
            gap = digit_h * rng.uniform(0.02, 0.45)
            wanted = [
                (
                    self._digit_ids[self._pick_digit.sample(rng)]
                    if rng.random() > 0.08
                    else self._object_classes.sample(rng),
                    digit_h * rng.uniform(0.85, 1.1),
                )
                for _ in range(count)
            ]
            chars = self._objects(wanted, rng)
            total = sum(float(c.box[2] - c.box[0]) for c in chars) + gap * (count - 1) + stroke_width * count
            x = rng.uniform(0, max(0.0, width - total - stroke_width)) + stroke_width / 2
            row_h = max(float(c.box[3] - c.box[1]) for c in chars)
            base = row_tops[r] + rng.uniform(0, max(0.0, band - row_h - 2 * stroke_width)) + stroke_width / 2
            drift = 0.0
            for c in chars:
                drift += rng.normal(0.0, 0.04 * digit_h)
                char_h = float(c.box[3] - c.box[1])
                y = base + drift + (row_h - char_h) * rng.uniform(0.3, 1.0)
                y = min(max(y, stroke_width / 2), height - char_h - stroke_width / 2)
                _translate(c, x, y)
                x += float(c.box[2] - c.box[0]) + gap + stroke_width
                if c.box[2] + stroke_width / 2 <= width and c.box[3] + stroke_width / 2 <= height:
                    placed.append(c)
        return placed

    def _scatter_place(
        self,
        objs: list[PlacedObject],
        rng: np.random.Generator,
        space: Space,
        placed: list[PlacedObject] | None = None,
    ) -> list[PlacedObject]:
        """Random non-overlapping placement (rejection sampling); objects that fit nowhere are
        dropped."""
        placed = list(placed or [])
        width, height = space.width, space.height
        r = space.stroke_width / 2 + 2  # keep a small gap between inks
        for obj in objs:
            w, h = float(obj.box[2]), float(obj.box[3])
            if w + 2 * r > width or h + 2 * r > height:
                continue
            for _ in range(40):
                x = rng.uniform(r, width - w - r)
                y = rng.uniform(r, height - h - r)
                cand = np.array([x - r, y - r, x + w + r, y + h + r])
                if all(not _overlaps(cand, p.box, r) for p in placed):
                    _translate(obj, x, y)
                    placed.append(obj)
                    break
        return placed

    @staticmethod
    def _stroke_width_for(objects: list[PlacedObject], stroke_width: float) -> int:
        """One whole-pixel width per canvas, as in the app; capped so the smallest object
        stays legible."""
        if objects:
            smallest = min(float(max(o.box[2] - o.box[0], o.box[3] - o.box[1])) for o in objects)
            stroke_width = min(stroke_width, 0.2 * smallest)
        return max(1, int(stroke_width))  # never above the width layouts left room for


def _translate(obj: PlacedObject, x: float, y: float) -> None:
    """Move the object so its point box starts at (x, y)."""
    dx, dy = x - float(obj.box[0]), y - float(obj.box[1])
    obj.ink = obj.ink.moved(obj.ink.points + np.array([dx, dy], dtype=np.float32))
    obj.box = obj.box + np.array([dx, dy, dx, dy])


def _overlaps(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    return not (
        a[2] <= b[0] - margin or b[2] + margin <= a[0] or a[3] <= b[1] - margin or b[3] + margin <= a[1]
    )


def draw_strokes(image: np.ndarray, strokes: Sequence[np.ndarray], width: float, ink: int = 0) -> None:
    """Anti-aliased strokes with round caps and joins, exactly `width` px wide, in place, on a
    uint8 (H, W) image (darkest wins where strokes meet). See `draw_polylines`."""
    draw_polylines(image, Polylines.from_strokes(strokes), width, ink)


def draw_polylines(image: np.ndarray, strokes: Polylines, width: float, ink: int = 0) -> None:
    """Anti-aliased round-capped strokes exactly `width` px wide, in place (darkest wins).

    cv2's own thick lines only come in odd effective widths (2 -> 3.4 px, 3 and 4 -> 5.4 px),
    which would break the exact-box rule; instead the centre lines are rasterised 1 px thin and
    the ink is the coverage of a disk of radius width/2 around them, from a distance transform.
    Continuous coordinates (pixel i covers [i, i+1)) are shifted by half a pixel into cv2's
    pixel-centre convention. Only the window around the ink is transformed: pixels further
    than the radius from every centre pixel stay paper anyway.
    """
    if len(strokes) == 0:
        return
    r = width / 2
    height, full_width = image.shape
    lo = np.floor(strokes.points.min(axis=0) - r - 3)
    hi = np.ceil(strokes.points.max(axis=0) + r + 3)
    x0, y0 = max(0, int(lo[0])), max(0, int(lo[1]))
    x1, y1 = min(full_width, int(hi[0])), min(height, int(hi[1]))
    if x1 <= x0 or y1 <= y0:
        return
    window = image[y0:y1, x0:x1]
    centre = np.full(window.shape, 255, dtype=np.uint8)
    origin = np.array([x0 + 0.5, y0 + 0.5], dtype=np.float32)
    fixed = np.round((strokes.points - origin) * _ONE).astype(np.int32)
    lines = np.split(fixed, np.cumsum(strokes.lengths)[:-1])
    cv2.polylines(centre, lines, False, 0, thickness=1, lineType=cv2.LINE_8, shift=_SHIFT)
    distance = cv2.distanceTransform(centre, cv2.DIST_L2, cv2.DIST_MASK_5)
    # coverage = clip(r + 0.5 - d, 0, 1); paper where d >= r + 0.5, full ink where d <= r - 0.5
    np.maximum(distance, r - 0.5, out=distance)
    _, distance = cv2.threshold(distance, r + 0.5, r + 0.5, cv2.THRESH_TRUNC)
    shade = cv2.convertScaleAbs(distance, alpha=(255 - ink), beta=ink - (255 - ink) * (r - 0.5))
    np.minimum(window, shade, out=window)


__all__ = [
    "NUM_CLASSES",
    "TRAINING_SCENES",
    "DrawingPool",
    "Scene",
    "SceneComposer",
    "SceneConfig",
    "draw_polylines",
    "draw_strokes",
]
