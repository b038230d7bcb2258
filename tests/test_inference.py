from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from digit_detector import Detector, WeightsError, inference
from digit_detector.classes import CENSORED_ID, CLASS_NAMES, OTHER_ID, Detection
from digit_detector.inference import Inference
from digit_detector.postprocess import CENSORED_DOMINANCE
from digit_detector.preprocess import ink_box, letterbox_gray, to_model_input
from digit_detector.render import annotate, beside_in_number, read_numbers

from .conftest import REPO, ReadsEverythingAs, overlay, render_digit_canvas


@pytest.fixture(scope="module")
def detector(onnx_weights: Path) -> Detector:
    return Detector(onnx_weights)


def test_detector_accepts_every_image_kind_and_size(detector: Detector) -> None:
    rgba = render_digit_canvas("7")
    gray = 255 - rgba[..., 3]
    rgb = np.stack([gray] * 3, axis=2)
    results = [detector.predict(x) for x in (rgba, rgb, gray, Image.fromarray(rgba), Image.fromarray(gray))]
    for dets in results:
        assert all(isinstance(d, Detection) for d in dets)
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    ref = [(d.class_id, d.box) for d in results[0]]
    for dets in results[1:]:
        assert [d.class_id for d in dets] == [c for c, _ in ref]
        for d, (_, box) in zip(dets, ref, strict=True):
            np.testing.assert_allclose(d.box, box, atol=0.5)
    for wrong in (rgba, gray.astype(np.float32), np.zeros((0, 5), np.uint8), Image.fromarray(gray)):
        with pytest.raises(ValueError, match="take the \\(H, W\\) uint8 image of to_gray_on_white"):
            detector.predict_gray(wrong)  # type: ignore[arg-type]
    for shape in ((1, 1), (3, 999), (777, 5), (250, 700), (1001, 333)):
        out = detector.predict(np.full(shape, 255, np.uint8))
        for d in out:
            assert 0 <= d.box[0] <= d.box[2] <= shape[1] and 0 <= d.box[1] <= d.box[3] <= shape[0]


def test_boxes_are_in_canvas_pixels_and_framing_ignores_empty_paper(detector: Detector) -> None:
    """A box lands on the ink in canvas pixels, within 4 model-input pixels (the model's own
    error; a mapping bug is tens of pixels off); the same drawing on a larger canvas is
    framed the same way, so its box is the same one, shifted."""
    small = render_digit_canvas("4", size=(400, 400), box=(100, 60, 260, 320))
    big = np.zeros((600, 900, 4), np.uint8)
    big[100:500, 200:600] = small
    ink = ink_box(255 - small[..., 3])
    assert ink is not None
    _, letterbox = letterbox_gray(255 - small[..., 3])
    a = detector.predict(small)
    b = detector.predict(big)
    assert a and b and a[0].label == b[0].label == "4"
    np.testing.assert_allclose(a[0].box, ink, atol=4 / letterbox.scale_x)
    np.testing.assert_allclose(b[0].box, np.add(a[0].box, [200, 100, 200, 100]), atol=0.01)


def test_boxes_fit_the_ink_and_never_pass_it(detector: Detector) -> None:
    """The model's own boxes pass the ink by up to 5 canvas pixels on some side for several of
    these digits; fitted, each box lies within its digit's ink box."""
    for label in "0123456789":
        canvas = render_digit_canvas(label)
        ink = ink_box(255 - canvas[..., 3])
        assert ink is not None
        shown = detector.predict(canvas)
        assert shown and shown[0].label == label
        x1, y1, x2, y2 = shown[0].box
        assert ink[0] <= x1 < x2 <= ink[2] and ink[1] <= y1 < y2 <= ink[3], (label, shown[0].box, ink)


def test_what_is_shown_has_one_label_per_object_after_fitting(detector: Detector) -> None:
    """Two boxes apart on the model's output (IoU 0.43) that fit onto the same ink become one
    label: the stronger one."""
    raw = np.zeros((2, 5 + len(CLASS_NAMES)), np.float32)
    raw[:, :5] = [[50, 50, 20, 40, 0.9], [58, 50, 20, 40, 0.9]]
    raw[0, 5 + 1], raw[1, 5 + 7] = 0.9, 0.8
    on_the_same_ink = lambda boxes: np.tile([10.0, 10.0, 30.0, 50.0], (len(boxes), 1))  # noqa: E731
    inference = Inference(raw, np.full((60, 40), 255, np.uint8), on_the_same_ink)
    alone = Detector(detector.weights, reader=False)
    shown = alone.decide(inference)
    assert [(d.label, d.box) for d in shown] == [("1", (10.0, 10.0, 30.0, 50.0))]
    candidates = alone.decide(inference, all_candidates=True)
    assert sorted(d.label for d in candidates) == ["1", "7"]  # mAP candidates keep both


def _small_writing_beside_a_large_digit() -> tuple[np.ndarray, list[np.ndarray]]:
    """1100x800: an "8" 680 px tall, and "234" 26 px tall far from it (about 6 px tall in
    the first look's letterbox). Returns the canvas and the small digits' ink boxes."""
    large = render_digit_canvas("8", size=(1100, 800), stroke=16, box=(80, 80, 560, 760))
    small = [
        render_digit_canvas(
            label, size=(1100, 800), stroke=3, seed=i, box=(850 + 26 * i, 100, 868 + 26 * i, 126)
        )
        for i, label in enumerate("234")
    ]
    inks = [ink for digit in small if (ink := ink_box(255 - digit[..., 3])) is not None]
    assert len(inks) == len(small)
    return overlay(large, *small), inks


def test_a_closer_look_reads_small_writing_beside_a_large_drawing(
    detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    canvas, inks = _small_writing_beside_a_large_digit()
    shown = sorted(detector.predict(canvas), key=lambda d: d.box[0])
    assert [d.label for d in shown] == ["8", "2", "3", "4"]
    for detection, ink in zip(shown[1:], inks, strict=True):  # fitted at the closer look's pixel
        x1, y1, x2, y2 = detection.box
        assert ink[0] <= x1 < x2 <= ink[2] and ink[1] <= y1 < y2 <= ink[3], (detection, ink)
    candidates = detector.predict(canvas, all_candidates=True)
    assert {"2", "3", "4"} <= {d.label for d in candidates if d.box[0] > 800 and d.score > 0.5}
    # Without it the first look alone misses them: they are 6 px tall in its input.
    monkeypatch.setattr(Detector, "_closer_looks", lambda *args: [])
    assert [d.label for d in detector.predict(canvas)] == ["8"]


class _StandIn:
    """Stands in for the model as `Detector._backend`: keeps the ink of every look it is given
    (`seen`); `read` says what it reads in a look's ink (rows (N, 5 + C))."""

    input_size = 192

    def __init__(self) -> None:
        self.metadata: dict[str, object] = {}
        self.seen: list[np.ndarray] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.seen.append(batch[0, 0] < 0.5)
        return self.read(self.seen[-1].copy(), len(self.seen))[None]

    def read(self, ink: np.ndarray, look: int) -> np.ndarray:
        raise NotImplementedError


def _read_as(
    ink: np.ndarray, class_id: int, score: float, start: float = 0.0, stop: float = 1.0
) -> np.ndarray:
    """A row reading the ink's box as `class_id` (objectness `score`, probability 1), the box
    cut to the share `start`..`stop` of the ink's width."""
    ys, xs = np.nonzero(ink)
    width = xs.max() + 1 - xs.min()
    x1, x2 = xs.min() + start * width, xs.min() + stop * width
    row = np.zeros(5 + len(CLASS_NAMES), np.float32)
    row[:5] = [(x1 + x2) / 2, (ys.min() + ys.max() + 1) / 2, x2 - x1, ys.max() + 1 - ys.min(), score]
    row[5 + class_id] = 1.0
    return row


class _ScriptedModel(_StandIn):
    """The first look labels the ink left of input column 120 (the large "8"); the closer look
    reads the left half of its ink as a "3" and the right half as "other"."""

    def read(self, ink: np.ndarray, look: int) -> np.ndarray:
        if look == 1:
            ink[:, 120:] = False
            return np.stack([_read_as(ink, 8, 0.95)])
        # the "3" cuts its ink's left side
        return np.stack([_read_as(ink, 3, 0.95, 0.02, 0.5), _read_as(ink, OTHER_ID, 0.95, 0.5, 1.0)])


def test_a_closer_look_adds_its_digits_where_they_are_drawn_but_not_its_other_reads(
    onnx_weights: Path,
) -> None:
    canvas, inks = _small_writing_beside_a_large_digit()
    detector = Detector(onnx_weights, reader=False)  # the scripted reads stand
    detector._backend = model = _ScriptedModel()
    shown = sorted(detector.predict(canvas), key=lambda d: d.box[0])
    assert len(model.seen) == 2
    assert [d.label for d in shown] == ["8", "3"]
    x1, y1, x2, y2 = shown[1].box  # on the left half of the small ink, in canvas pixels
    assert x1 == inks[0][0]  # the cut side reached the ink: a closer-look pixel is enough
    assert (
        inks[0][0] <= x1 < x2 <= (inks[0][0] + inks[2][2]) / 2 + 2
        and inks[0][1] - 1 <= y1 < y2 <= inks[0][3] + 1
    )
    model.seen.clear()
    candidates = detector.predict(canvas, all_candidates=True)
    assert sorted(d.label for d in candidates) == ["3", "8"]


class _RowModel(_StandIn):
    """Two drawings side by side: the first look reads the left one as "7" and the right one
    as "4" (0.8); a closer look reads all the ink it sees as one "1" (0.99), boxed exactly."""

    def read(self, ink: np.ndarray, look: int) -> np.ndarray:
        if look > 1:
            return np.stack([_read_as(ink, 1, 0.99)])
        left, right = ink.copy(), ink.copy()
        left[:, 96:], right[:, :96] = False, False
        return np.stack([_read_as(left, 7, 0.8), _read_as(right, 4, 0.8)])


def test_two_drawings_side_by_side_get_a_closer_look_each(onnx_weights: Path) -> None:
    """Two digits far apart on a wide canvas: the ink is cut between them and each half is
    looked at again, larger; the closer reads (stronger here) replace the first ones."""
    left = render_digit_canvas("7", size=(1100, 400), stroke=6, box=(60, 100, 180, 300))
    right = render_digit_canvas("4", size=(1100, 400), stroke=6, box=(900, 100, 1020, 300))
    canvas = overlay(left, right)
    detector = Detector(onnx_weights, reader=False)  # the scripted reads stand
    detector._backend = model = _RowModel()
    shown = sorted(detector.predict(canvas), key=lambda d: d.box[0])
    assert len(model.seen) == 3
    whole, left_half, right_half = model.seen
    assert whole.sum() < left_half.sum() and whole.sum() < right_half.sum()  # each half seen larger
    assert [d.label for d in shown] == ["1", "1"]
    for detection, drawn in zip(shown, (left, right), strict=True):
        ink = ink_box(255 - drawn[..., 3])
        assert ink is not None
        np.testing.assert_allclose(detection.box, ink, atol=2)


def test_drawings_large_in_the_first_look_are_not_split(onnx_weights: Path) -> None:
    """The same two digits, 320 px tall instead of 200: 56 input pixels tall in the first look
    (over CLOSER_LOOK_SMALL_INPUT_PX), read well there; no closer look, no extra model run."""
    left = render_digit_canvas("7", size=(1100, 400), stroke=6, box=(60, 40, 250, 360))
    right = render_digit_canvas("4", size=(1100, 400), stroke=6, box=(830, 40, 1020, 360))
    detector = Detector(onnx_weights, reader=False)  # the scripted reads stand
    detector._backend = model = _RowModel()
    shown = sorted(detector.predict(overlay(left, right)), key=lambda d: d.box[0])
    assert len(model.seen) == 1
    assert [d.label for d in shown] == ["7", "4"]


def test_small_writing_far_apart_unread_at_first_is_read_by_its_halves(
    detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The numbers "234" and "567", 18 px tall, at the two ends of a 1100x400 canvas: about 3
    input px tall in the first look, which reads nothing; the unread ink spans the whole frame,
    so it is cut between its strokes and each half, seen about twice as large, is read."""
    lefts = [40 + 16 * i if i < 3 else 1100 - 40 - 16 * (6 - i) for i in range(6)]
    digits = [
        render_digit_canvas(label, size=(1100, 400), stroke=3, seed=i, box=(x, 133, x + 12.6, 151))
        for i, (label, x) in enumerate(zip("234567", lefts, strict=True))
    ]
    inks = [ink_box(255 - digit[..., 3]) for digit in digits]
    canvas = overlay(*digits)
    shown = sorted(detector.predict(canvas), key=lambda d: d.box[0])
    assert [d.label for d in shown] == list("234567")
    for detection, ink in zip(shown, inks, strict=True):
        x1, y1, x2, y2 = detection.box
        assert ink is not None
        assert ink[0] <= x1 < x2 <= ink[2] and ink[1] <= y1 < y2 <= ink[3], (detection, ink)
    monkeypatch.setattr(inference, "CLOSER_LOOK_SPREAD_GAIN", float("inf"))
    assert detector.predict(canvas) == []


class _BlindModel(_StandIn):
    """A model that reads nothing."""

    def read(self, ink: np.ndarray, look: int) -> np.ndarray:
        return np.zeros((1, 5 + len(CLASS_NAMES)), np.float32)


@pytest.mark.parametrize(("width_per_height", "looks"), [(2.0, 3), (1.4, 1)])
def test_unread_ink_is_halved_only_when_each_half_is_seen_clearly_larger(
    onnx_weights: Path, width_per_height: float, looks: int
) -> None:
    """Two bars 400 px tall, unread, at the ends of ink `width_per_height` times as wide: its
    halves are framed about that many times larger than the whole, worth two more model runs
    at 2x, not at 1.4x (under CLOSER_LOOK_SPREAD_GAIN, though over CLOSER_LOOK_MIN_GAIN)."""
    gray = np.full((800, 1100), 255, np.uint8)
    right = 100 + int(400 * width_per_height)
    gray[200:600, 100:104] = gray[200:600, right - 4 : right] = 0
    detector = Detector(onnx_weights, reader=False)  # the scripted reads stand
    detector._backend = model = _BlindModel()
    assert detector.predict(gray) == []
    assert len(model.seen) == looks


class _CensoredModel(_StandIn):
    """One drawing: reads all the ink it sees as one box, "other" at 0.855 and censored at the
    next of `scores` (one per look)."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = scores

    def read(self, ink: np.ndarray, look: int) -> np.ndarray:
        row = _read_as(ink, OTHER_ID, 0.95)
        row[5 + OTHER_ID] = 0.9
        row[5 + CENSORED_ID] = self.scores[look - 1] / 0.95
        return row[None]


LARGE, SMALL = (800, (200, 150, 500, 650)), (400, (150, 150, 180, 200))  # canvas side, drawing box


@pytest.mark.parametrize(
    ("drawing", "scores", "censored"),
    [(LARGE, [0.9, 0.1], False), (LARGE, [0.9, 0.8], True), (LARGE, [0.05], False), (SMALL, [0.9], True)],
)
def test_a_censored_read_is_checked_on_the_drawing_seen_smaller(
    onnx_weights: Path, drawing: tuple[int, tuple[int, int, int, int]], scores: list[float], censored: bool
) -> None:
    """A censored read is pixelated only if the mean of its score and the score of the same
    frame seen smaller (CENSORED_VIEW_FACTORS) reaches the threshold (0.9 and 0.1: no; 0.9 and
    0.8: yes); a drawing with no censored read costs no second look, nor one already small in
    the first look (50 input px tall, under CENSORED_VIEW_MIN_INPUT_PX)."""
    side, box = drawing
    canvas = render_digit_canvas("8", size=(side, side), stroke=16 if side == 800 else 4, box=box)
    detector = Detector(onnx_weights, reader=False)  # the scripted reads stand
    detector._backend = model = _CensoredModel(scores)
    shown = detector.predict(canvas)
    assert len(model.seen) == len(scores)
    assert sorted(d.label for d in shown) == (["censored", "other"] if censored else ["other"])
    ink = ink_box(255 - canvas[..., 3])
    assert ink is not None
    for detection in shown:
        assert detection.score == pytest.approx(np.mean(scores) if detection.label == "censored" else 0.855)
        np.testing.assert_allclose(detection.box, ink, atol=2)
    if len(scores) == 2:
        first, smaller = (ink_box(255 * (1 - look.astype(np.uint8))) for look in model.seen)
        assert first is not None and smaller is not None
        (factor,) = inference.CENSORED_VIEW_FACTORS
        np.testing.assert_allclose(smaller[2:] - smaller[:2], (first[2:] - first[:2]) * factor, atol=1)


@pytest.mark.parametrize(
    ("read_as", "detector_score", "shown"),
    [
        (CENSORED_ID, 0.9, [("censored", 0.96), ("other", 0.855)]),  # 0.4 x 0.9 + 0.6 x 1
        (CENSORED_ID, 0.8, [("censored", 0.92), ("other", 0.855)]),  # now the stronger: first
        (OTHER_ID, 0.9, [("other", 0.855)]),  # 0.4 x 0.9 + 0.6 x 0: under 0.6
        (CENSORED_ID, 0.3, [("other", 0.855), ("censored", 0.72)]),  # lifted by the reader; strongest first
        (CENSORED_ID, 0.2, [("other", 0.855)]),  # 0.68 if read, but under "other" read 3x as sure
    ],
)
def test_a_reader_of_every_class_scores_the_censored_drawing_with_the_detector(
    onnx_weights: Path, read_as: int, detector_score: float, shown: list[tuple[str, float]]
) -> None:
    """A reader of every class scores the censored drawing shown (beside its "other" label at
    0.855, which is not re-read): 0.4 x the detector's score + 0.6 x the reader's
    p(censored), shown from censored_conf (0.6, the default); one crop read, unless the
    censored read is dropped under the "other" one (CENSORED_DOMINANCE)."""
    side, box = SMALL
    canvas = render_digit_canvas("8", size=(side, side), stroke=4, box=box)
    detector = Detector(onnx_weights, reader=False)
    detector._backend = _CensoredModel([detector_score])
    detector.reader = reader = ReadsEverythingAs(read_as, every_class=True)
    assert inference.READER_CENSORED_WEIGHT == 0.6 and detector.censored_conf == 0.6
    decided = [(d.label, round(d.score, 3)) for d in detector.predict(canvas)]
    assert decided == [(label, pytest.approx(score)) for label, score in shown]
    assert reader.calls == [1] * (detector_score > 0.855 / CENSORED_DOMINANCE)


@pytest.mark.parametrize(
    ("weight", "censored_conf", "lowest"),
    [(0.4, 0.55, 0.25), (0.6, 0.9, 0.75), (0.6, 0.6, 0.1), (0.6, 0.05, 0.05)],
)
def test_censored_candidates_start_at_the_lowest_detector_score_that_can_be_shown(
    onnx_weights: Path, weight: float, censored_conf: float, lowest: float
) -> None:
    """With a reader of every class, a censored read is a candidate from the detector score
    that a reader's p(censored) of 1 lifts to censored_conf, never under
    MIN_CENSORED_CANDIDATE (0.1) unless censored_conf is lower; without such a reader, from
    censored_conf itself."""
    detector = Detector(onnx_weights, reader=False)
    assert detector._censored_candidates_from(censored_conf) == censored_conf
    detector.reader = ReadsEverythingAs(OTHER_ID, every_class=True)
    detector.reader_censored_weight = weight
    assert detector._censored_candidates_from(censored_conf) == pytest.approx(lowest)


def test_no_closer_look_at_a_labelled_drawing_alone_or_a_full_size_frame(detector: Detector) -> None:
    """A large digit by itself: no ink is left without a label, so nothing more is shown, and
    a canvas framed at full size never takes a closer look."""
    canvas = render_digit_canvas("8", size=(1100, 800), stroke=16, box=(80, 80, 560, 760))
    assert [d.label for d in detector.predict(canvas)] == ["8"]
    gray = 255 - canvas[..., 3]
    square, letterbox = letterbox_gray(gray)
    raw = detector.raw(to_model_input(square))
    assert detector._closer_looks(gray, square, raw, letterbox) == []
    nothing = np.zeros_like(raw)  # all of the "8" unlabelled: alone, it is framed no larger
    assert detector._closer_looks(gray, square, nothing, letterbox) == []
    small = render_digit_canvas("5", box=(150, 150, 230, 260))
    gray = 255 - small[..., 3]
    square, letterbox = letterbox_gray(gray)
    assert letterbox.scale_x == 1.0
    raw = np.zeros_like(detector.raw(to_model_input(square)))  # nothing labelled at all
    assert detector._closer_looks(gray, square, raw, letterbox) == []


def test_detector_is_thread_safe(detector: Detector) -> None:
    canvas = render_digit_canvas("3")
    ref = detector.predict(canvas)
    results: list[list[Detection]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(detector.predict(canvas))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    assert all(r == ref for r in results)


def test_serving_sessions_sleep_between_runs_and_the_reader_gets_the_detectors_threads(
    onnx_weights: Path,
) -> None:
    """Spinning pools of the detector, the reader and a second visitor fight over two cores."""
    detector = Detector(onnx_weights, threads=3)
    assert detector.reader is not None
    for session in (detector._backend.session, detector.reader.session):  # type: ignore[attr-defined]
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 3


def test_missing_and_corrupted_weights_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        Detector(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 100)
    with pytest.raises(WeightsError, match="corrupted"):
        Detector(bad)
    bad_pt = tmp_path / "bad.pt"
    bad_pt.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="corrupted"):
        Detector(bad_pt)


# Training-side packages: in requirements-dev.txt only, so the serving image does not have them.
TRAINING_ONLY_MODULES = ("torch", "matplotlib", "yaml", "tqdm", "pycocotools", "onnx")
SERVING_MODULES = (
    "digit_detector.feedback.local",
    "digit_detector.feedback.s3",
    "digit_detector.feedback.review",
    "digit_detector.feedback.guard",
    "digit_detector.image_io",
    "digit_detector.render",
)


def _app_imports() -> list[str]:
    """Every digit_detector module app.py imports (read from its source, so a new import is
    covered without touching this test)."""
    tree = ast.parse((REPO / "app.py").read_text())
    return sorted(
        {
            n.module
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("digit_detector")
        }
    )


def test_serving_surface_imports_no_training_package(onnx_weights: Path) -> None:
    modules = sorted({*_app_imports(), *SERVING_MODULES})
    assert "digit_detector.feedback" in modules and "digit_detector.analysis" in modules
    code = (
        "import importlib, sys, numpy as np\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "from digit_detector import Detector\n"
        "from digit_detector.analysis import analyse\n"
        f"d = Detector({str(onnx_weights)!r})\n"
        "analyse(np.zeros((50, 50, 4), np.uint8), d); d.predict(np.zeros((50, 50), np.uint8))\n"
        f"print(sorted(m for m in {TRAINING_ONLY_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _predict_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digit_detector", "predict", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_predict_cli_json_contract(tmp_path: Path, onnx_weights: Path) -> None:
    paths = []
    for i, label in enumerate(("2", "8")):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(render_digit_canvas(label, size=(300 + 100 * i, 400))).save(p)
        paths.append(str(p))
    out = _predict_cli("--json", "--conf", "0.2", "--weights", str(onnx_weights), *paths)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["path"] for r in data] == paths
    for r, w in zip(data, (300, 400), strict=True):
        assert set(r) == {"path", "width", "height", "detections", "numbers"}
        assert (r["width"], r["height"]) == (w, 400)
        for d in r["detections"]:
            assert set(d) == {"class_id", "label", "score", "box"}
            assert CLASS_NAMES[d["class_id"]] == d["label"] and 0.2 <= d["score"] <= 1
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= 400
    table = _predict_cli("--weights", str(onnx_weights), paths[0])
    assert table.returncode == 0 and "detections" in table.stdout
    candidates = json.loads(_predict_cli("--json", "--all", "--weights", str(onnx_weights), paths[1]).stdout)[
        0
    ]
    scores = [d["score"] for d in candidates["detections"]]
    assert len(scores) > 1 and scores == sorted(scores, reverse=True) and candidates["numbers"] == []
    table = _predict_cli("--all", "--weights", str(onnx_weights), paths[1])
    assert table.returncode == 0 and f"{len(scores)} mAP candidates, by score" in table.stdout


def test_predict_cli_reports_bad_files_and_keeps_going(tmp_path: Path, onnx_weights: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(render_digit_canvas("5")).save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.png"
    out = _predict_cli(
        "--json", "--weights", str(onnx_weights), str(missing), str(good), str(corrupt), str(empty)
    )
    assert out.returncode != 0
    data = json.loads(out.stdout)
    assert [r["path"] for r in data] == [str(good)]
    for name in ("missing.png", "corrupt.png", "empty.png"):
        assert name in out.stderr
    bad_conf = _predict_cli("--conf", "2", str(good))
    assert bad_conf.returncode == 2 and "[0, 1]" in bad_conf.stderr


def test_annotation_pixelates_censored_and_reads_numbers() -> None:
    canvas = np.full((200, 400), 255, np.uint8)
    canvas[50:150, 250:350] = np.tile(np.array([0, 255], np.uint8), (100, 50))  # fine stripes
    dets = [
        Detection("1", 1, 0.9, (10, 40, 40, 120)),
        Detection("7", 7, 0.8, (60, 45, 95, 125)),
        Detection("censored", 11, 0.95, (250, 50, 350, 150)),
        Detection("3", 3, 0.7, (10, 150, 40, 199)),
    ]
    out = np.asarray(annotate(canvas, dets).convert("L"))
    inner = out[70:130, 270:330]
    assert inner.std() < 40, "censored region must not show the drawing"
    assert read_numbers(dets) == ["17", "3"]
    spaced = [Detection("4", 4, 0.9, (0, 0, 20, 30)), Detection("2", 2, 0.9, (100, 2, 120, 32))]
    assert read_numbers(spaced) == ["4 2"]
    assert read_numbers([]) == []


def test_beside_in_number_finds_the_next_digit_of_a_number_only() -> None:
    """A neighbour counts on the box's line, of a like height, at most its height away: as
    `read_numbers` joins two digits into one number."""
    digit = np.array([[100.0, 100.0, 130.0, 140.0]])  # 40 px tall

    def beside(*neighbour: float) -> bool:
        return bool(beside_in_number(digit, np.array([neighbour]))[0])

    assert beside(140, 102, 170, 142)  # next in the number, 10 px gap
    assert beside(60, 98, 90, 138)  # the one before it
    assert beside(170, 100, 200, 140)  # 40 px gap: one height
    assert not beside(171, 100, 201, 140)  # a wider gap starts a new number
    assert not beside(140, 150, 170, 190)  # the line below
    assert not beside(140, 125, 170, 165)  # its centre outside the box's rows
    assert not beside(140, 115, 170, 195)  # the box's centre in its rows, not its centre in the box's
    assert not beside(140, 125, 170, 145)  # its centre in the box's rows, not the box's in its
    assert beside(140, 80, 170, 160)  # twice as tall
    assert not beside(140, 80, 170, 161)  # more than twice as tall
    assert not beside(140, 110, 170, 129)  # less than half as tall
    assert beside(110, 105, 125, 135)  # overlapping
    assert beside_in_number(digit, np.zeros((0, 4))).tolist() == [False]
    assert beside_in_number(np.zeros((0, 4)), digit).tolist() == []


def test_cli_user_errors_are_one_line_and_bugs_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from digit_detector import cli

    assert cli.main(["predict", "--weights", str(tmp_path / "none.onnx"), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digit-detector predict: error: weights file not found") and "Traceback" not in err
    with pytest.raises(WeightsError):  # --debug: the traceback of a user error too
        cli.main(["--debug", "predict", "--weights", str(tmp_path / "none.onnx"), "x.png"])

    def bug(args: object) -> int:
        raise ValueError("a programming error")

    monkeypatch.setitem(cli._COMMANDS, "predict", bug)
    with pytest.raises(ValueError, match="a programming error"):  # not turned into "error: ..."
        cli.main(["predict", "x.png"])


def test_evaluate_counts_what_is_shown_at_a_threshold(
    detector: Detector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mAP on the candidates; the confusion matrix at the threshold on the app's decisions. With
    a reader that reads every crop as 3 ranking the candidates (and no digit shown re-read), the
    "7" is a candidate at half its score, under 0.5, but it is shown at its own."""
    from digit_detector.data.yolo_format import write_label_file
    from digit_detector.evaluate import F1_THRESHOLDS, evaluate_dataset

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    canvas = overlay(
        render_digit_canvas("3", box=(40, 80, 160, 300)),
        render_digit_canvas("7", seed=1, box=(220, 80, 340, 300)),
    )
    gray = 255 - canvas[..., 3]
    Image.fromarray(gray).save(tmp_path / "images" / "a.png")
    inks = np.array([ink_box(gray[:, :200]), ink_box(gray[:, 200:]) + np.array([200, 0, 200, 0])], np.float64)
    write_label_file(tmp_path / "labels" / "a.txt", inks, np.array([3, 7]), 400, 400)
    threes = Detector(detector.weights, reader=False)
    threes.reader, threes.reader_digit_max_score = ReadsEverythingAs(3), 0.0
    assert "7" not in {d.label for d in threes.predict(gray, all_candidates=True, conf=0.5)}
    assert sorted(d.label for d in threes.predict(gray, conf=0.5)) == ["3", "7"]
    decided_at: list[float | None] = []
    decide = threes.decide

    def recorded(inference: Inference, conf: float | None = None, **kwargs: Any) -> list[Detection]:
        decided_at.append(None if kwargs.get("all_candidates") else conf)
        return decide(inference, conf, **kwargs)

    monkeypatch.setattr(threes, "decide", recorded)
    result = evaluate_dataset(threes, tmp_path, tmp_path / "eval", threshold=0.52, plots=False)
    assert decided_at == [None, *sorted({*F1_THRESHOLDS, 0.52})]  # the app's decisions at each
    matrix = np.array(result.report["confusion_matrix"]["rows_true_cols_pred"])
    assert matrix[3, 3] == matrix[7, 7] == 1 and matrix.sum() == 2
    assert result.report["f1_by_threshold"][0.5] == 1.0  # both shown right at 0.5
    assert result.report["threshold"] == 0.52
    assert result.report["map50"] == pytest.approx(1.0)


class _ReadsThreeAt(ReadsEverythingAs):
    """Reads every crop as 3 with probability `p`, 8 with the rest."""

    def __init__(self, p: float) -> None:
        super().__init__(3)
        self.p = p

    def read(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        probs = super().read(gray, boxes) * self.p
        probs[:, 8] += 1.0 - self.p
        return probs


def _one_digit_shown_of_two(
    size: tuple[int, int], three_at: tuple[float, float, float, float]
) -> tuple[Inference, np.ndarray]:
    """A "2" the model reads (0.9) in (40, 80, 160, 300) and a "3" in `three_at` it does not:
    the first look's rows, and the 3's ink box."""
    two = render_digit_canvas("2", size=size, box=(40, 80, 160, 300))
    three = render_digit_canvas(
        "3", size=size, seed=1, box=three_at, stroke=14.0 * (three_at[3] - three_at[1]) / 220
    )
    gray = 255 - overlay(two, three)[..., 3]
    two_ink, three_ink = ink_box(255 - two[..., 3]), ink_box(255 - three[..., 3])
    assert two_ink is not None and three_ink is not None
    _, letterbox = letterbox_gray(gray)
    x1, y1, x2, y2 = letterbox.to_input(two_ink)[0]
    raw = np.zeros((1, 5 + len(CLASS_NAMES)), np.float32)
    raw[0, :5] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.9]
    raw[0, 5 + 2] = 1.0
    return Inference(raw, gray, letterbox.to_source), three_ink


def test_a_digit_no_look_labelled_beside_a_digit_shown_is_read(detector: Detector) -> None:
    """Strokes no box touches, beside a digit shown as the next digit of a number, are shown as
    the digit the reader reads, its probability the score; not under the reader's threshold
    (or the slider's), not far from the number nor too small to be its next digit, not without a
    reader."""
    threes = Detector(detector.weights, reader=False)
    inference, three = _one_digit_shown_of_two((400, 400), (220, 80, 340, 300))
    assert [d.label for d in threes.decide(inference)] == ["2"]
    threes.reader, threes.reader_digit_max_score = _ReadsThreeAt(0.85), 0.0  # the 2 stays a 2
    shown = threes.decide(inference)
    assert [(d.label, d.score) for d in shown] == [("2", pytest.approx(0.9)), ("3", pytest.approx(0.85))]
    np.testing.assert_allclose(shown[1].box, three, atol=1.0)
    threes.reader_unlabelled_digit_conf = 0.86
    assert [d.label for d in threes.decide(inference)] == ["2"]
    threes.reader_unlabelled_digit_conf = 0.8
    assert [d.label for d in threes.decide(inference, conf=0.88)] == ["2"]  # the slider above it
    far, _ = _one_digit_shown_of_two((1100, 400), (900, 80, 1020, 300))
    assert [d.label for d in threes.decide(far)] == ["2"]
    small, _ = _one_digit_shown_of_two((400, 400), (220, 230, 240, 260))  # near, too small for it
    assert [d.label for d in threes.decide(small)] == ["2"]
