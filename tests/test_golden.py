"""Golden tests: hand-computed answers for the code that decides what users and metrics see.
Each one fails on a specific wrong implementation (named in its docstring)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digit_detector import Detector
from digit_detector.analysis import analyse
from digit_detector.boxes import (
    LabelFormatError,
    box_coverage,
    box_iou,
    cxcywh_to_xyxy,
    format_label_lines,
    parse_label_lines,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
    xyxy_to_yolo,
    yolo_to_xyxy,
)
from digit_detector.classes import CENSORED_ID, CLASS_NAMES, OTHER_ID, Detection
from digit_detector.image_io import MAX_PIXELS, ImageLoadError, load_image
from digit_detector.metrics import CocoResult, ImagePrediction, ImageTruth, coco_evaluate
from digit_detector.model.loss import cxcywh_to_corners, xyxy_to_centre_size
from digit_detector.preprocess import Letterbox, letterbox_gray, to_gray_on_white
from digit_detector.render import read_numbers, reading_order

BOX = np.array([[10.0, 5.0, 30.0, 45.0]])  # x1 y1 x2 y2: 20 wide, 40 tall, centre (20, 25)


def test_box_conversions_by_hand() -> None:
    np.testing.assert_allclose(xyxy_to_xywh(BOX), [[10, 5, 20, 40]])
    np.testing.assert_allclose(xyxy_to_cxcywh(BOX), [[20, 25, 20, 40]])
    np.testing.assert_allclose(xywh_to_xyxy(np.array([[10, 5, 20, 40]])), BOX)
    np.testing.assert_allclose(cxcywh_to_xyxy(np.array([[20.0, 25, 20, 40]])), BOX)
    np.testing.assert_allclose(xyxy_to_yolo(BOX, 100, 50), [[0.2, 0.5, 0.2, 0.8]])
    np.testing.assert_allclose(yolo_to_xyxy(np.array([[0.2, 0.5, 0.2, 0.8]]), 100, 50), BOX)
    other = np.array([[20.0, 25.0, 40.0, 65.0]])  # overlap 10 x 20 = 200; union 800 + 800 - 200
    np.testing.assert_allclose(box_iou(BOX, other), [[200 / 1400]])
    np.testing.assert_allclose(box_coverage(BOX, other), [[200 / 800]])


def test_torch_twins_match_the_numpy_formulas() -> None:
    t = torch.tensor(BOX)
    centre, size = xyxy_to_centre_size(t)
    np.testing.assert_allclose(torch.cat([centre, size], 1).numpy(), xyxy_to_cxcywh(BOX))
    lo, hi = cxcywh_to_corners(torch.tensor(xyxy_to_cxcywh(BOX)))
    np.testing.assert_allclose(torch.cat([lo, hi], 1).numpy(), BOX)


def test_one_exact_yolo_label_line() -> None:
    assert format_label_lines(BOX, np.array([3]), 100, 50) == "3 0.200000 0.500000 0.200000 0.800000\n"
    boxes, ids = parse_label_lines("3 0.2 0.5 0.2 0.8\n\n", 100, 50, len(CLASS_NAMES))
    np.testing.assert_allclose(boxes, BOX)
    assert ids.tolist() == [3]
    for bad, why in [
        ("3 0.2 0.5 0.2", "expected"),
        ("12 0.2 0.5 0.2 0.8", "class id 12"),
        ("3 0.2 0.5 0 0.8", "size"),
        ("3 1.5 0.5 0.2 0.8", "centre"),
        ("3 nan 0.5 0.2 0.8", "finite"),
        ("x 0.2 0.5 0.2 0.8", "numbers"),
    ]:
        with pytest.raises(LabelFormatError, match=why):
            parse_label_lines(bad, 100, 50, len(CLASS_NAMES), where="f.txt")


def _coco(truth: np.ndarray, pred: np.ndarray) -> CocoResult:
    """One class-0 box per image; images without a prediction get none."""
    return coco_evaluate(
        [ImageTruth(truth[i : i + 1], np.array([0])) for i in range(len(truth))],
        [ImagePrediction(pred[i : i + 1], np.array([0.9]), np.array([0])) for i in range(len(pred))]
        + [ImagePrediction(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))] * (len(truth) - len(pred)),
    )


def test_coco_evaluation_of_known_cases() -> None:
    """Kills: COCO boxes written as x1y1x2y2, a wrong IoU, the wrong slice of COCO's precision
    array (IoU, area range, max detections), per-class APs or curves not filled in."""
    truth = np.array([[100.0, 100.0, 140.0, 180.0], [300.0, 50.0, 340.0, 130.0]])  # 40 x 80 each
    perfect = _coco(truth, truth)
    assert (perfect.map50, perfect.map50_95) == pytest.approx((1.0, 1.0))
    assert perfect.ap50_per_class == pytest.approx({"0": 1.0}) and perfect.ap_per_class == pytest.approx(
        {"0": 1.0}
    )
    np.testing.assert_allclose(perfect.recall_points, np.linspace(0, 1, 101))
    assert perfect.pr_precision.shape == (101, len(CLASS_NAMES))
    assert (perfect.pr_precision[:, 0] == 1).all() and (perfect.pr_precision[:, 1:] == -1).all()
    # Shifted down by 25 px: IoU = 40*55 / (2*3200 - 2200) = 0.524, a match at IoU 0.50 only.
    shifted = _coco(truth, truth + np.array([0, 25, 0, 25]))
    assert (shifted.map50, shifted.map50_95) == pytest.approx((1.0, 0.1))
    assert shifted.ap_per_class == pytest.approx({"0": 0.1})
    # One of two found: recall 0.5 at precision 1: 51 of COCO's 101 recall points.
    half = _coco(truth, truth[:1])
    assert (half.map50, half.map50_95) == pytest.approx((51 / 101, 51 / 101))
    np.testing.assert_allclose(half.pr_precision[:, 0], [1.0] * 51 + [0.0] * 50)
    # Twelve objects in one image, all found: COCO's 100-detection setting sees them all.
    many = np.array([[40.0 * i, 0, 40.0 * i + 30, 60] for i in range(12)])
    crowd = coco_evaluate(
        [ImageTruth(many, np.zeros(12, np.int64))],
        [ImagePrediction(many, np.linspace(0.9, 0.5, 12), np.zeros(12, np.int64))],
    )
    assert crowd.map50 == pytest.approx(1.0)
    nothing = coco_evaluate(
        [ImageTruth(np.zeros((0, 4)), np.zeros(0, np.int64))],
        [ImagePrediction(truth, np.array([0.9, 0.8]), np.array([0, 0]))],
    )
    assert (nothing.map50, nothing.map50_95, nothing.ap50_per_class, nothing.ap_per_class) == (
        0.0,
        0.0,
        {},
        {},
    )
    assert nothing.pr_precision.shape == (101, len(CLASS_NAMES)) and (nothing.pr_precision == -1).all()
    np.testing.assert_allclose(nothing.recall_points, np.linspace(0, 1, 101))


def _det(label: str, box: tuple[float, float, float, float], score: float = 0.9) -> Detection:
    return Detection(label, CLASS_NAMES.index(label), score, box)


@pytest.mark.parametrize(
    ("detections", "expected"),
    [
        ([], []),
        ([_det("7", (60, 45, 95, 125)), _det("1", (10, 40, 40, 120))], ["17"]),
        # Two lines: the lower line is read second.
        (
            [_det("3", (10, 150, 40, 199)), _det("1", (10, 40, 40, 120)), _det("7", (60, 45, 95, 125))],
            ["17", "3"],
        ),
        # Gap exactly the mean digit height (30): same number; one pixel more: a new number.
        ([_det("4", (0, 0, 20, 30)), _det("2", (50, 0, 70, 30))], ["42"]),
        ([_det("4", (0, 0, 20, 30)), _det("2", (51, 0, 71, 30))], ["4 2"]),
        # "other" and "censored" are not digits; a digit inside an "other" box is part of it.
        ([_det("5", (0, 0, 20, 30)), _det("other", (22, 0, 40, 30)), _det("8", (45, 0, 65, 30))], ["58"]),
        (
            [_det("other", (0, 0, 200, 200)), _det("3", (80, 80, 100, 110)), _det("1", (300, 80, 320, 110))],
            ["1"],
        ),
        ([_det("censored", (0, 0, 50, 50)), _det("6", (60, 10, 80, 40))], ["6"]),
        # Duplicates read as they come: post-processing keeps one label per glyph.
        ([_det("9", (0, 0, 20, 30)), _det("9", (25, 0, 45, 30))], ["99"]),
    ],
)
def test_read_numbers(detections: list[Detection], expected: list[str]) -> None:
    assert read_numbers(detections) == expected


def test_reading_order_is_line_by_line_left_to_right() -> None:
    dets = [_det("3", (10, 150, 40, 199)), _det("7", (60, 45, 95, 125)), _det("other", (10, 40, 40, 120))]
    assert [d.label for d in reading_order(dets)] == ["other", "7", "3"]


class _RawDetector(Detector):
    """The shipped weights' Detector, with the model output replaced by given anchors (input
    pixels of the 192 square; `_on_input` maps a canvas box there)."""

    def __init__(self, weights: Path, anchors: list[list[float]], censored_conf: float) -> None:
        super().__init__(weights, censored_conf=censored_conf, reader=False)  # the given reads stand
        self.anchors = np.array(anchors, dtype=np.float32)

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.anchors

    def _with_censored_views(self, gray: np.ndarray, letterbox: Letterbox, raw: np.ndarray) -> np.ndarray:
        return raw  # the anchors are one look's: a smaller view of the frame would not see them there


Box = tuple[float, float, float, float]


def _on_input(canvas: np.ndarray, box: Box) -> Box:
    """A canvas box as the model would see it: (cx, cy, w, h) in input pixels."""
    _, letterbox = letterbox_gray(to_gray_on_white(canvas))
    cx, cy, w, h = xyxy_to_cxcywh(letterbox.to_input(np.array([box])))[0]
    return cx, cy, w, h


def _anchor(cxcywh: tuple[float, float, float, float], obj: float, probs: dict[int, float]) -> list[float]:
    row = [0.0] * (5 + len(CLASS_NAMES))
    row[:5] = [*cxcywh, obj]
    for c, p in probs.items():
        row[5 + c] = p
    return row


def _texture() -> np.ndarray:
    """Random ink in the square 100..200: any pixelation finer than a few cells shows it."""
    canvas = np.zeros((384, 384, 4), np.uint8)
    canvas[100:200, 100:200, 3] = np.random.default_rng(0).integers(0, 256, (100, 100))
    return canvas


def test_analyse_pixelates_a_weak_censored_box_below_the_slider_and_says_why(onnx_weights: Path) -> None:
    """Kills: censored filtered by the slider; no pixelation, or one that shows the shape; no
    explanation."""
    # censored 0.9 x 0.3 = 0.27 around the ink (canvas 100..200)
    box = _on_input(_texture(), (100, 100, 200, 200))
    detector = _RawDetector(onnx_weights, [_anchor(box, 0.9, {CENSORED_ID: 0.3})], 0.2)
    result = analyse(_texture(), detector, conf=0.5)
    assert [d.label for d in result.detections] == ["censored"]
    np.testing.assert_allclose(result.detections[0].box, (100, 100, 200, 200), atol=0.01)
    assert result.censor_note and "0.27" in result.censor_note and "0.20" in result.censor_note
    assert result.annotated is not None
    inner = np.asarray(result.annotated.convert("L"))[104:196, 104:196]
    rows, cols = np.unique(inner, axis=0).shape[0], np.unique(inner, axis=1).shape[1]
    assert rows <= 4 and cols <= 4, f"{rows} x {cols} distinct cells: the drawing shows through"
    assert result.numbers == []


def test_analyse_drops_a_censored_box_under_a_much_stronger_other_box(onnx_weights: Path) -> None:
    box = _on_input(_texture(), (100, 100, 200, 200))
    anchors = [_anchor(box, 0.95, {OTHER_ID: 0.8, CENSORED_ID: 0.2})]  # 0.76 vs 0.19
    result = analyse(_texture(), _RawDetector(onnx_weights, anchors, 0.1), conf=0.5)
    assert [d.label for d in result.detections] == ["other"]
    assert result.censor_note is None
    inner = np.asarray(result.annotated.convert("L"))[120:180, 120:180]  # type: ignore[union-attr]
    assert len(np.unique(inner, axis=0)) > 50, "a drawing that is not censored stays visible"


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def _with_fake_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (a decompression bomb's trick)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def test_image_io_limits_and_orientation(tmp_path: Path) -> None:
    """Kills: the byte limit, the pixel limit or the bomb check removed; EXIF ignored."""
    with pytest.raises(ImageLoadError, match=r"over the 1 MB limit"):
        load_image(b"\0" * 1_000_001, max_bytes=1_000_000)
    with pytest.raises(ImageLoadError, match=r"2000x2000 pixels, over the 1 megapixel limit"):
        load_image(_png(2000, 2000), max_pixels=1_000_000)
    bomb = _with_fake_size(_png(10, 10), 20000, 20000)
    with pytest.raises(ImageLoadError, match=f"over the {MAX_PIXELS // 10**6} megapixel limit") as err:
        load_image(bomb)
    assert "DecompressionBomb" not in str(err.value) and not str(err.value).startswith("upload")
    gif = io.BytesIO()
    Image.new("L", (10, 10)).save(gif, format="GIF")
    with pytest.raises(ImageLoadError, match="GIF images are not supported"):
        load_image(gif.getvalue())
    wide = Image.new("RGB", (60, 20), (255, 255, 255))
    exif = wide.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    jpeg = io.BytesIO()
    wide.save(jpeg, format="JPEG", exif=exif.tobytes())
    upright = load_image(jpeg.getvalue())
    assert upright.size == (20, 60)
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(ImageLoadError, match=f"^{path}: the file is 0.0 MB, over"):
        load_image(path, max_bytes=1000)


def test_censored_threshold_separates_obscene_from_ordinary_doodles_best() -> None:
    from digit_detector.report import censored_sweep, choose_censored_threshold

    obscene = [0.9, 0.8, 0.6, 0.4, 0.12]
    ordinary = [0.5] + [0.0] * 99  # one ordinary doodle in 100 scores 0.5
    sweep = censored_sweep(obscene, ordinary)
    row = {r["threshold"]: r for r in sweep}
    assert row[0.1]["obscene_pixelated"] == 1.0 and row[0.1]["ordinary_pixelated"] == 0.01
    assert row[0.55]["obscene_pixelated"] == 0.6 and row[0.55]["ordinary_pixelated"] == 0.0
    # J = 0.99 from 0.05 to 0.1; the tie goes to the higher threshold.
    assert choose_censored_threshold(sweep)["threshold"] == 0.1
    ordinary = [0.5] * 50 + [0.0] * 50  # half of the ordinary doodles score 0.5
    chosen = choose_censored_threshold(censored_sweep(obscene, ordinary))
    # J: 1.0 - 0.5 at 0.1, 0.6 - 0 from 0.55 to 0.6 (the tie goes to 0.6)
    assert chosen["threshold"] == 0.6 and chosen["obscene_pixelated"] == 0.6


def test_report_command_runs_on_the_fixture_strokes(
    stroke_dir: Path, onnx_weights: Path, tmp_path: Path
) -> None:
    import json

    from digit_detector.cli import main

    out = tmp_path / "report"
    args = [
        "report",
        "--data-dir",
        str(stroke_dir),
        "--weights",
        str(onnx_weights),
        "--n",
        "3",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["groups"]["numbers"]["images"] == 3 and report["groups"]["numbers"]["map50"] is not None
    assert report["groups"]["unseen_doodles"]["images"] == 0  # the fixture has no doodles
    markdown = (out / "report.md").read_text()
    assert (
        markdown.startswith("Weights")
        and "reader `" in markdown
        and "ranked by the detector and the reader" in markdown
    )
    assert main([*args, "--reader", "none", "--n", "1"]) == 0
    assert (
        "no reader" in (out / "report.md").read_text()
        and "of the detector alone" in (out / "report.md").read_text()
    )
    assert (out / "failures_numbers.png").exists()


def test_misread_numbers_are_kept_with_what_was_drawn_and_what_was_read(stroke_dir: Path) -> None:
    """Kills: misread numbers not collected, or captioned without the number drawn."""
    from digit_detector.data.strokes import load_drawings
    from digit_detector.report import groups, run_group

    class SeesNothing:
        censored_conf = 0.45

        def infer(self, image: np.ndarray) -> tuple[None, None]:
            return None, None

        def decide(self, *args: object, **kwargs: object) -> list:
            return []

    numbers = next(g for g in groups() if g.name == "numbers")
    result = run_group(SeesNothing(), numbers, load_drawings(stroke_dir), 3, seed=0)  # type: ignore[arg-type]
    assert result.numbers_exact == 0 and len(result.failures) == 3
    for failure in result.failures:
        drawn, read = failure.caption.splitlines()
        assert drawn.startswith("drawn ") and drawn[6:].replace(" ", "").isdigit()
        assert read == "read nothing" and failure.shown == []


def test_failure_sheet_writes_each_caption_under_its_canvas() -> None:
    from digit_detector.report import Failure, failure_sheet

    canvas = np.full((100, 100), 255, np.uint8)
    plain = np.asarray(failure_sheet([Failure(canvas, [])], cols=2, tile=150))
    assert plain.shape[:2] == (150, 300)
    long_caption = "drawn 1234567890 1234567890\nread 7234567890 1234567890"
    sheet = np.asarray(
        failure_sheet([Failure(canvas, []), Failure(canvas, [], long_caption)], cols=2, tile=150)
    )
    assert sheet.shape[0] > 150 + 2 * 12
    text = sheet[150:].min(axis=2) < 100  # dark text under the canvases
    assert not text[:, :150].any() and text[:, 150:].any()
    assert text[: text.shape[0] // 2].any() and text[text.shape[0] // 2 :].any()  # two lines
    assert not text[:, -3:].any()  # cut to the tile, not spilling over its edge


def test_even_category_group_draws_every_category_equally_often(stroke_dir: Path) -> None:
    """Kills: the even group weighting categories by their number of drawings (or by source)."""
    from collections import Counter
    from dataclasses import replace

    from digit_detector.data.strokes import load_drawings
    from digit_detector.report import group_composer, groups

    drawings = load_drawings(stroke_dir)[:20]
    pool = [
        replace(d, class_id=OTHER_ID, category="big" if i < 18 else "small") for i, d in enumerate(drawings)
    ]
    by_group = {g.name: g for g in groups()}
    rng = np.random.default_rng(0)
    even = group_composer(by_group["even_unseen_doodles"], pool).pool
    counts = Counter(even.sample(OTHER_ID, rng).category for _ in range(2000))
    assert abs(counts["small"] - 1000) < 100
    plain = group_composer(by_group["unseen_doodles"], pool).pool
    assert Counter(plain.sample(OTHER_ID, rng).category for _ in range(2000))["small"] < 400


def test_predict_at_its_defaults_shows_what_the_page_shows(
    stroke_dir: Path, onnx_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kills: the CLI and the page deciding differently (thresholds, suppression, order)."""
    import json

    from digit_detector.cli import main
    from digit_detector.data.compose import SceneComposer
    from digit_detector.data.strokes import load_drawings

    composer = SceneComposer.from_drawings(load_drawings(stroke_dir))
    rng = np.random.default_rng(3)
    canvases, paths = [], []
    for i in range(12):
        gray = composer.compose(rng).image
        rgba = np.zeros((*gray.shape, 4), np.uint8)
        rgba[..., 3] = 255 - gray  # black ink on a transparent canvas, as the app receives it
        path = tmp_path / f"canvas{i}.png"
        Image.fromarray(rgba, "RGBA").save(path)
        canvases.append(rgba)
        paths.append(str(path))
    assert main(["predict", "--json", "--weights", str(onnx_weights), *paths]) == 0
    printed = json.loads(capsys.readouterr().out)
    detector = Detector(onnx_weights)
    shown = 0
    for canvas, result in zip(canvases, printed, strict=True):
        page = analyse(canvas, detector)
        assert [d.to_dict() for d in page.detections] == result["detections"]
        assert page.numbers == result["numbers"]
        shown += len(page.detections)
    assert shown >= 12, "the comparison must cover real detections"


def test_confusion_matrix_and_recall_of_known_matches() -> None:
    """Kills: a wrong threshold or IoU comparison, matching a truth twice, misplaced misses
    or false positives, recall from the wrong cell."""
    from digit_detector.metrics import match_at_threshold, recall_per_class

    truth = ImageTruth(
        np.array([[0, 0, 40, 80], [100, 0, 140, 80], [200, 0, 240, 80], [300, 0, 340, 80.0]]),
        np.array([0, 1, OTHER_ID, 5]),
    )
    pred = ImagePrediction(
        np.array(
            [
                [0, 0, 40, 80],  # the 0, right class
                [1, 0, 41, 80],  # a second box on the same 0: a false positive
                [100, 20, 140, 100],  # the 1 read as 7, IoU 60*40 / (2*3200 - 2400) = 0.6
                [300, 0, 340, 80],  # the 5, but under the threshold
                [400, 0, 440, 80.0],  # nothing there: a false positive 3
            ]
        ),
        np.array([0.9, 0.8, 0.7, 0.4, 0.6]),
        np.array([0, 0, 7, 5, 3]),
    )
    m = match_at_threshold([truth], [pred], conf=0.5)
    assert m.shape == (len(CLASS_NAMES) + 1, len(CLASS_NAMES) + 1) and m.dtype == np.int64
    background = m.shape[0] - 1
    expected = {(0, 0): 1, (background, 0): 1, (1, 7): 1, (OTHER_ID, background): 1, (5, background): 1}
    expected[(background, 3)] = 1
    assert {(int(i), int(j)): int(m[i, j]) for i, j in zip(*np.nonzero(m), strict=True)} == expected
    assert recall_per_class(m) == {"0": 1.0, "1": 0.0, "5": 0.0, "other": 0.0}
    m = match_at_threshold([truth], [pred], conf=0.5, iou=0.61)  # the 7 no longer matches the 1
    assert m[1, 7] == 0 and m[1, background] == 1 and m[background, 7] == 1
    assert match_at_threshold([truth], [pred], conf=0.4)[5, 5] == 1  # 0.4 >= 0.4 counts


def test_confusion_matrix_counts_ties_and_order() -> None:
    """Kills: counting with = instead of +=, IoU compared with > instead of >=, matching in
    ascending score order."""
    from digit_detector.metrics import match_at_threshold

    truth = ImageTruth(np.array([[0, 0, 40, 80], [100, 0, 140, 80.0]]), np.array([3, 3]))
    pred = ImagePrediction(
        np.array([[0, 20, 40, 100], [100, 0, 140, 80], [101, 0, 141, 80.0]]),
        np.array([0.9, 0.8, 0.7]),
        np.array([3, 6, 3]),  # an IoU of exactly 0.6 matches at 0.6; 0.8 beats 0.7 to the truth
    )
    m = match_at_threshold([truth], [pred], conf=0.5, iou=0.6)
    background = m.shape[0] - 1
    assert m[3, 3] == 1 and m[3, 6] == 1 and m[background, 3] == 1 and m.sum() == 3
    two = match_at_threshold([truth, truth], [pred, pred], conf=0.5, iou=0.6)
    assert two[3, 3] == 2 and two[3, 6] == 2 and two[background, 3] == 2


def test_box_coverage_of_uneven_boxes() -> None:
    inner = np.array([[10.0, 20.0, 50.0, 30.0]])  # 40 x 10
    outer = np.array([[30.0, 0.0, 100.0, 25.0], [0.0, 0.0, 5.0, 5.0]])  # covers 20 x 5 of it; none
    np.testing.assert_allclose(box_coverage(inner, outer), [[100 / 400, 0.0]])


def test_boxes_apart_on_one_axis_share_nothing() -> None:
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    above_below = np.array([[2.0, 20.0, 8.0, 30.0], [2.0, -30.0, 8.0, -20.0]])  # x overlaps, y apart
    left_right = above_below[:, [1, 0, 3, 2]]  # the same, transposed
    for apart in (above_below, left_right):
        np.testing.assert_array_equal(box_iou(box, apart), [[0.0, 0.0]])
        np.testing.assert_array_equal(box_coverage(box, apart), [[0.0, 0.0]])


def test_confusion_matrix_with_empty_images_and_repeated_misses() -> None:
    from digit_detector.metrics import match_at_threshold, recall_per_class

    empty_truth = ImageTruth(np.zeros((0, 4)), np.zeros(0, np.int64))
    one_pred = ImagePrediction(np.array([[0, 0, 10, 10.0]]), np.array([0.9]), np.array([4]))
    no_pred = ImagePrediction(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    two_twos = ImageTruth(np.array([[0, 0, 10, 10], [20, 0, 30, 10.0]]), np.array([2, 2]))
    m = match_at_threshold([empty_truth, two_twos], [one_pred, no_pred], conf=0.5)
    background = m.shape[0] - 1
    assert m[background, 4] == 1 and m[2, background] == 2 and m.sum() == 3
    assert recall_per_class(m) == {"2": 0.0}
    hit = match_at_threshold(
        [two_twos], [ImagePrediction(two_twos.boxes[:1], np.array([0.9]), np.array([2]))], 0.5
    )
    assert recall_per_class(hit) == {"2": 0.5}


def test_map_candidates_include_every_class() -> None:
    from digit_detector.postprocess import postprocess_for_map

    rows = np.zeros((2, 5 + len(CLASS_NAMES)), np.float32)
    rows[0, :5] = (50, 50, 20, 40, 0.9)
    rows[0, 5 + 0] = 0.9  # a "0"
    rows[1, :5] = (150, 50, 20, 40, 0.9)
    rows[1, 5 + CENSORED_ID] = 0.9
    _, _, ids = postprocess_for_map(rows, conf=0.1)
    assert sorted(ids.tolist()) == [0, CENSORED_ID]
