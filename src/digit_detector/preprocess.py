"""The ONE preprocessing path, shared by training, evaluation, the app and ONNX inference.

canvas (PIL or uint8 array; gray, RGB or RGBA with any alpha) -> composite on white (images
without alpha, i.e. uploads: light-on-dark inverted, uneven paper flattened) -> frame the ink
(its box plus a margin; never enlarged) -> letterbox that frame, keeping its aspect ratio, into
a `size` x `size` square -> ink normalised (the darkest ink made black, so a 1-px stroke shrunk
from a large canvas stays visible) -> model input: float32, layout (3, size, size) CHW, RGB,
values in [0, 1] (white = 1.0).

Parts of the ink get closer looks through the same path (`Detector.infer`): `ink_halves`
cuts a row of drawings (or of unlabelled strokes) in two between them, or `unlabelled_ink`
finds the strokes the first look left without a label, both on the first square; `ink_under`
keeps only that part on the canvas, and it is framed and letterboxed as above. A censored
read's frame is letterboxed again at a smaller scale (`Letterbox.smaller`, `Letterbox.apply`).

Framing is why small writing on a wide canvas is readable: 30-px digits on an 800-px canvas
would be 7 px tall after letterboxing the whole canvas, and are 30 px tall in their frame.

`Letterbox` holds the exact forward/inverse map between canvas pixels and model-input pixels.
Box convention everywhere: (x1, y1, x2, y2) in continuous pixel coordinates, where the pixel with
index i covers [i, i + 1). A box around pixel columns 10..19 is therefore x1=10, x2=20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

INPUT_SIZE = 192
PAD_VALUE = 255  # letterbox padding is white, like the canvas
INPUT_SCALE = 1.0 / 255.0  # uint8 gray -> float input; training applies the same to batches
# Ink normalisation: a square whose darkest pixel is lighter than black is stretched (white
# fixed) so that pixel becomes black, by at most MAX_INK_GAIN; squares with no pixel darker
# than FAINTEST_INK (paper, specks, noise) are left alone.
MAX_INK_GAIN = 6.0
FAINTEST_INK = 235
# Framing: pixels darker than FRAME_INK count as ink; the frame is their box grown by
# FRAME_MARGIN of its longer side plus FRAME_PAD px on every side, within the canvas. The scale
# never exceeds 1: the model sees ink at most at its drawn size, so a speck stays a speck.
FRAME_INK = 200
FRAME_MARGIN = 0.1
FRAME_PAD = 4
MAX_SCALE = 1.0
# A frame's shorter side takes at most COMPACT_INPUT_PX input pixels, whatever the input size:
# a model with a larger input gives wide ink (rows of digits) the extra pixels while a compact
# drawing keeps the size a 192-px input gives it (a no-op at 192 and below). Served without
# it, a model trained at 256 read single drawings worse than the 192 one (weights/README.md).
COMPACT_INPUT_PX = 192


@dataclass(frozen=True)
class Letterbox:
    """Maps canvas pixels to model-input pixels: input = (canvas - frame origin) * scale + pad
    (per axis). The frame is the part of the canvas the model sees (the whole canvas unless
    one is given)."""

    src_width: int
    src_height: int
    size: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    frame: tuple[int, int, int, int]  # (x1, y1, x2, y2), whole canvas pixels

    @classmethod
    def fit(
        cls,
        width: int,
        height: int,
        size: int = INPUT_SIZE,
        frame: tuple[int, int, int, int] | None = None,
        max_scale: float = float("inf"),
    ) -> Letterbox:
        if width <= 0 or height <= 0:
            raise ValueError(f"image must have a positive size, got {width}x{height}")
        frame = frame or (0, 0, width, height)
        frame_w, frame_h = frame[2] - frame[0], frame[3] - frame[1]
        if frame_w <= 0 or frame_h <= 0 or min(frame[:2]) < 0 or frame[2] > width or frame[3] > height:
            raise ValueError(f"frame {frame} is not a non-empty part of the {width}x{height} canvas")
        scale = min(size / frame_w, size / frame_h, max_scale)
        new_w = min(size, max(1, round(frame_w * scale)))
        new_h = min(size, max(1, round(frame_h * scale)))
        # Per-axis scales from the integer resized size make the inverse map exact.
        return cls(
            src_width=width,
            src_height=height,
            size=size,
            scale_x=new_w / frame_w,
            scale_y=new_h / frame_h,
            pad_x=(size - new_w) // 2,
            pad_y=(size - new_h) // 2,
            frame=frame,
        )

    @classmethod
    def around_ink(cls, width: int, height: int, ink: np.ndarray | None, size: int = INPUT_SIZE) -> Letterbox:
        """The letterbox serving and training use: framed on `ink` (the box (x1, y1, x2, y2) of
        every drawn pixel, None for a blank canvas), see FRAME_MARGIN, MAX_SCALE and
        COMPACT_INPUT_PX."""
        if ink is None:
            return cls.fit(width, height, size, max_scale=MAX_SCALE)
        x1, y1, x2, y2 = (float(v) for v in ink)
        frame = pixel_region(ink, FRAME_MARGIN * max(x2 - x1, y2 - y1) + FRAME_PAD, width, height)
        if frame[2] <= frame[0] or frame[3] <= frame[1]:
            frame = (0, 0, width, height)  # ink outside the canvas: nothing to frame
        short_side = min(frame[2] - frame[0], frame[3] - frame[1])
        return cls.fit(width, height, size, frame, min(MAX_SCALE, COMPACT_INPUT_PX / short_side))

    @property
    def scale(self) -> float:
        """Input pixels per canvas pixel (the smaller of the two axes')."""
        return min(self.scale_x, self.scale_y)

    def smaller(self, factor: float) -> Letterbox:
        """The same frame letterboxed at `factor` (< 1) times this scale, centred: the same
        drawing seen smaller."""
        return Letterbox.fit(self.src_width, self.src_height, self.size, self.frame, self.scale * factor)

    def apply(self, gray: np.ndarray) -> np.ndarray:
        """(H, W) uint8 canvas -> (size, size) uint8: the frame resized into the square on
        white, ink normalised."""
        x1, y1, x2, y2 = self.frame
        gray = gray[y1:y2, x1:x2]
        new_w, new_h = self.resized_width, self.resized_height
        if (new_w, new_h) != (gray.shape[1], gray.shape[0]):
            shrinking = new_w < gray.shape[1] or new_h < gray.shape[0]
            # INTER_AREA keeps thin strokes visible when shrinking a large canvas.
            interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            gray = cv2.resize(gray, (new_w, new_h), interpolation=interp)
        out = np.full((self.size, self.size), PAD_VALUE, dtype=np.uint8)
        out[self.pad_y : self.pad_y + new_h, self.pad_x : self.pad_x + new_w] = gray
        return normalise_ink(out)

    @property
    def resized_width(self) -> int:
        return round((self.frame[2] - self.frame[0]) * self.scale_x)

    @property
    def resized_height(self) -> int:
        return round((self.frame[3] - self.frame[1]) * self.scale_y)

    @property
    def offset(self) -> tuple[float, float]:
        """input = canvas * scale + offset: where the canvas origin lands in the input."""
        return self.pad_x - self.frame[0] * self.scale_x, self.pad_y - self.frame[1] * self.scale_y

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Canvas-pixel boxes (N, 4) -> model-input-pixel boxes (N, 4)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.empty_like(boxes)
        out[:, 0::2], out[:, 1::2] = self.to_input_xy(boxes[:, 0::2], boxes[:, 1::2])
        return out

    def to_input_xy(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canvas x and y coordinates (arrays of any shapes, one per axis) -> input x and y."""
        offset_x, offset_y = self.offset
        return np.asarray(xs) * self.scale_x + offset_x, np.asarray(ys) * self.scale_y + offset_y

    def rows_into(self, rows: np.ndarray, other: Letterbox) -> np.ndarray:
        """Decoded model rows (N, 5 + C) with cx, cy, w, h in this letterbox's input pixels ->
        the same rows in `other`'s input pixels (both letterboxes framed on one canvas)."""
        out = np.array(rows, dtype=np.float32).reshape(len(rows), -1)
        gain = np.array([other.scale_x / self.scale_x, other.scale_y / self.scale_y], dtype=np.float32)
        out[:, 0:2] = (out[:, 0:2] - np.array(self.offset, dtype=np.float32)) * gain + np.array(
            other.offset, dtype=np.float32
        )
        out[:, 2:4] *= gain
        return out

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Model-input-pixel boxes (N, 4) -> canvas-pixel boxes (N, 4), clipped to the canvas."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        out = (boxes - np.tile(self.offset, 2)) / scale
        out[:, 0::2] = out[:, 0::2].clip(0, self.src_width)
        out[:, 1::2] = out[:, 1::2].clip(0, self.src_height)
        return out


def to_gray_on_white(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any supported canvas image -> (H, W) uint8 grayscale composited on white.

    Accepts PIL images in any mode, or uint8 arrays shaped (H, W), (H, W, 1), (H, W, 3) RGB or
    (H, W, 4) RGBA. Transparent pixels become white whatever colour they carry, which is what
    the drawing canvas sends (transparent background, black ink).
    """
    if isinstance(image, Image.Image):
        image = _pil_to_array(image)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an image shaped (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if image.ndim == 2:
        return clean_background(image)
    image = np.ascontiguousarray(image)
    if image.shape[2] == 3:
        return clean_background(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    gray = cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    # On white: out = 255 - (255 - gray) * alpha / 255, in saturating uint8 cv2 ops (fast).
    ink = cv2.multiply(cv2.bitwise_not(gray), image[:, :, 3].copy(), scale=1 / 255)
    gray = cv2.bitwise_not(ink)
    return gray


def clean_background(gray: np.ndarray) -> np.ndarray:
    """An upload (no alpha) -> dark ink on white paper: light-on-dark images are inverted, and
    paper that is not white (a photo's shading, its ruled lines) is divided out. White paper,
    what the canvas and clean scans give, comes back unchanged (the same array), faint
    pencil strokes included."""
    height, width = gray.shape
    small = cv2.resize(gray, (max(1, width // 16), max(1, height // 16)), interpolation=cv2.INTER_AREA)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    if np.median(border) < 110 and np.median(small) < 128:
        gray, small = cv2.bitwise_not(gray), cv2.bitwise_not(small)  # chalk on a board, white on black
    # Paper estimate: a max filter removes ink up to ~7 small pixels (112 px) wide, a blur smooths it.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    paper = cv2.blur(cv2.dilate(small, kernel), (5, 5))
    if np.percentile(paper, 2) >= 230 and np.median(gray) >= 230:
        return gray  # white paper: a canvas or a clean scan, where a faint stroke is a stroke
    paper = cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)
    flat = cv2.divide(gray, np.maximum(paper, 1), scale=255)
    # What is within ~25% of the paper's brightness (shading left over, faint ruled lines) is
    # paper; darker ink is stretched to the full range.
    return cv2.LUT(flat, _PAPER_CUT_LUT)


_PAPER_CUT_LUT = np.clip(np.arange(256) * (255.0 / 190.0), 0, 255).astype(np.uint8)


def normalise_ink(square: np.ndarray) -> np.ndarray:
    """Stretch faint ink to black (white kept), identically in training and serving; see
    MAX_INK_GAIN. Returns the same array when nothing needs to change."""
    darkest = int(square.min()) if square.size else 255
    if darkest == 0 or darkest > FAINTEST_INK:
        return square
    gain = min(MAX_INK_GAIN, 255.0 / (255 - darkest))
    lut = np.clip(255.0 - (255.0 - np.arange(256)) * gain, 0, 255).round().astype(np.uint8)
    return cv2.LUT(square, lut)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("L", "RGB", "RGBA"):
        return np.asarray(image)
    if image.mode in ("LA", "PA", "P", "RGBa", "La") or "transparency" in image.info:
        return np.asarray(image.convert("RGBA"))
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Scale high-bit-depth grayscale to 8 bit instead of clipping it.
        arr = np.asarray(image, dtype=np.float64)
        top = arr.max() if arr.size and arr.max() > 255 else 255.0
        return (arr * (255.0 / top)).clip(0, 255).astype(np.uint8)
    return np.asarray(image.convert("RGB"))


def pixel_region(
    box: np.ndarray | tuple[float, ...], grow: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """The whole pixels (x1, y1, x2, y2, exclusive x2/y2) that a box grown by `grow` on every
    side touches, within a width x height image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        max(0, math.floor(x1 - grow)),
        max(0, math.floor(y1 - grow)),
        min(width, math.ceil(x2 + grow)),
        min(height, math.ceil(y2 + grow)),
    )


def ink_box(gray: np.ndarray, level: int = FRAME_INK) -> np.ndarray | None:
    """Box (x1, y1, x2, y2) of the pixels darker than `level` (exclusive x2/y2), None if none."""
    _, ink = cv2.threshold(gray, level - 1, 255, cv2.THRESH_BINARY_INV)  # ink: gray <= level - 1
    x, y, w, h = cv2.boundingRect(ink)  # of the non-zero pixels; 3x numpy's any() on a crop
    if w == 0:
        return None
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def ink_mask(square: np.ndarray) -> np.ndarray:
    """The letterboxed square's ink: its pixels darker than FAINTEST_INK."""
    return square < FAINTEST_INK


def unlabelled_ink(ink: np.ndarray, boxes: np.ndarray, clearance: float) -> np.ndarray:
    """The part of a mask of the square's ink (`ink_mask`) that no box touches, each stroke
    whole: a stroke that a box, grown by `clearance` pixels, touches anywhere is left out, so
    no cut-off tail of a labelled drawing is left to be read on its own. Boxes are
    (x1, y1, x2, y2) in the square's pixels."""
    size = ink.shape[0]
    boxed = np.zeros(ink.shape, dtype=bool)
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x1, y1, x2, y2 = pixel_region(box, clearance, size, size)
        boxed[y1:y2, x1:x2] = True
    if not np.any(ink > boxed):
        return np.zeros_like(ink)  # all ink inside boxes: the common case, no strokes to find
    count, strokes = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    touched = np.zeros(count, dtype=bool)
    touched[0] = True  # paper
    touched[strokes[boxed]] = True
    return ~touched[strokes]


def ink_parts(mask: np.ndarray, join: int) -> np.ndarray:
    """The boxes (N, 4; x1, y1, x2, y2, x2 and y2 exclusive) of a mask's parts: its pixels
    joined where at most 2 x `join` empty pixels lie between them, so the strokes of one
    drawing (a 4's two, a 5's flag) make one part."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * join + 1, 2 * join + 1), np.uint8))
    count, labels = cv2.connectedComponents(grown, connectivity=8)
    labels = np.where(mask, labels, 0)  # each part's box is its own pixels', not the grown ones'
    boxes = []
    for part in range(1, count):  # every grown part holds pixels of the mask
        ys, xs = np.nonzero(labels == part)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def unlabelled_parts(
    gray: np.ndarray, boxes: np.ndarray, region: np.ndarray, clearance: float, join: int
) -> np.ndarray:
    """The parts (`ink_parts`, in `gray`'s pixels) of the ink inside `region` (x1, y1, x2, y2)
    that lies outside every box grown by `clearance` pixels: (N, 4) boxes."""
    height, width = gray.shape[:2]
    x1, y1, x2, y2 = pixel_region(region, 0.0, width, height)
    ink = gray[y1:y2, x1:x2] < FRAME_INK
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        bx1, by1, bx2, by2 = pixel_region(box, clearance, width, height)
        ink[max(0, by1 - y1) : max(0, by2 - y1), max(0, bx1 - x1) : max(0, bx2 - x1)] = False
    if not ink.any():
        return np.zeros((0, 4), dtype=np.float64)  # the common case: every stroke labelled
    return ink_parts(ink, join) + np.array([x1, y1, x1, y1], dtype=np.float64)


def ink_halves(ink: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A mask of the square's ink (`ink_mask`, or part of it) cut in two across its longer
    extent, along the empty line (a column; a row for tall ink) nearest the ink's middle that
    no box crosses: two masks, or None when there is no such line. A row of digits splits
    between two of them; one drawing, even one of separate strokes inside its box, is never
    cut. Boxes are (x1, y1, x2, y2) in the square's pixels."""
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return None
    wide = np.ptp(xs) >= np.ptp(ys)
    lines = ink if wide else ink.T  # cut along columns of `lines`
    size = lines.shape[1]
    crossed = np.zeros(size, dtype=bool)
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x1, y1, x2, y2 = pixel_region(box, 0.0, size, size)
        low, high = (x1, x2) if wide else (y1, y2)
        crossed[low:high] = True
    inked_lines = lines.any(axis=0)
    inked = np.flatnonzero(inked_lines)
    free = np.flatnonzero(~inked_lines & ~crossed)
    free = free[(free > inked[0]) & (free < inked[-1])]
    if len(free) == 0:
        return None
    cut = int(free[np.argmin(np.abs(free - (inked[0] + inked[-1]) / 2))])
    before, after = lines.copy(), lines.copy()
    before[:, cut:] = False
    after[:, :cut] = False
    return (before, after) if wide else (before.T, after.T)


def ink_under(gray: np.ndarray, mask: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """`gray` white except under `mask` (pixels of the square `letterbox` made of `gray`), which
    is first grown by one input pixel so that the edges of its strokes come along."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    left, top, mask_w, mask_h = cv2.boundingRect(grown)  # of the non-zero pixels, as `ink_box`
    out = np.full_like(gray, PAD_VALUE)
    if mask_w == 0:
        return out
    source = letterbox.to_source(np.array([[left, top, left + mask_w, top + mask_h]]))[0]
    x1, y1, x2, y2 = pixel_region(source, 0.0, gray.shape[1], gray.shape[0])
    # The square's pixel under each canvas pixel's centre.
    xs, ys = letterbox.to_input_xy(np.arange(x1, x2) + 0.5, np.arange(y1, y2) + 0.5)
    columns, rows = np.floor(xs).astype(np.intp), np.floor(ys).astype(np.intp)
    size = grown.shape[0]
    under = grown[rows.clip(0, size - 1)[:, None], columns.clip(0, size - 1)[None, :]].astype(bool)
    out[y1:y2, x1:x2] = np.where(under, gray[y1:y2, x1:x2], np.uint8(PAD_VALUE))
    return out


def letterbox_gray(gray: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, Letterbox]:
    """(H, W) uint8 -> (size, size) uint8: the ink's frame letterboxed on white, plus the
    transform."""
    box = Letterbox.around_ink(gray.shape[1], gray.shape[0], ink_box(gray), size)
    return box.apply(gray), box


def preprocess(image: Image.Image | np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, Letterbox]:
    """Canvas image -> ((3, size, size) float32 model input in [0, 1], Letterbox transform).

    Raises ValueError with a clear message for unsupported input (wrong dtype, empty image,
    unsupported channel count).
    """
    square, box = letterbox_gray(to_gray_on_white(image), size)
    return to_model_input(square), box


def to_model_input(square: np.ndarray) -> np.ndarray:
    """(S, S) uint8 letterboxed gray -> (3, S, S) float32 in [0, 1]: the model's input layout."""
    gray = square.astype(np.float32)
    gray *= INPUT_SCALE
    return np.stack([gray, gray, gray])


def is_blank(gray: np.ndarray, ink_threshold: int = 250, min_ink_pixels: int = 3) -> bool:
    """True when a canvas already composited on white (`to_gray_on_white`) has (almost) no
    ink: skip inference and show a hint instead."""
    return int(np.count_nonzero(gray < ink_threshold)) < min_ink_pixels
