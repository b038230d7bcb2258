from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from digit_detector.preprocess import (
    COMPACT_INPUT_PX,
    INPUT_SIZE,
    Letterbox,
    ink_box,
    ink_halves,
    ink_mask,
    ink_parts,
    ink_under,
    is_blank,
    letterbox_gray,
    preprocess,
    to_gray_on_white,
    unlabelled_ink,
    unlabelled_parts,
)

SIZES = [(400, 400), (700, 250), (250, 700), (1, 1), (193, 97), (1000, 3)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_box_round_trip_is_exact(width: int, height: int) -> None:
    lb = Letterbox.fit(width, height)
    boxes = np.array([[0, 0, width, height], [width * 0.1, height * 0.2, width * 0.5, height * 0.9]])
    back = lb.to_source(lb.to_input(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-9)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_whole_canvas_fills_the_letterbox_centred(width: int, height: int) -> None:
    lb = Letterbox.fit(width, height)
    x1, y1, x2, y2 = lb.to_input(np.array([[0, 0, width, height]]))[0]
    assert max(x2 - x1, y2 - y1) == pytest.approx(INPUT_SIZE)
    assert x1 == lb.pad_x and y1 == lb.pad_y
    assert abs((INPUT_SIZE - x2) - x1) <= 1 and abs((INPUT_SIZE - y2) - y1) <= 1


@pytest.mark.parametrize(("width", "height"), [(400, 400), (700, 250), (250, 700)])
def test_ink_lands_where_the_transform_says(width: int, height: int) -> None:
    """A black block at known canvas pixels appears at the mapped input pixels (to the pixel)."""
    canvas = np.full((height, width), 255, np.uint8)
    x1, y1 = width // 4, height // 3
    x2, y2 = x1 + width // 5 * 2, y1 + height // 4 * 2  # even sizes keep INTER_AREA edges crisp
    canvas[y1:y2, x1:x2] = 0
    square, lb = letterbox_gray(canvas)
    ys, xs = np.nonzero(square < 128)
    found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
    expected = lb.to_input(np.array([[x1, y1, x2, y2]]))[0]
    np.testing.assert_allclose(found, expected, atol=0.75)
    back = lb.to_source(found[None])[0]
    np.testing.assert_allclose(back, [x1, y1, x2, y2], atol=0.75 / lb.scale)


def test_inverse_is_clipped_to_the_canvas() -> None:
    lb = Letterbox.fit(700, 250)
    out = lb.to_source(np.array([[-20.0, -20.0, 300.0, 300.0]]))[0]
    assert out.tolist() == [0.0, 0.0, 700.0, 250.0]


def _drawing(h: int = 120, w: int = 200) -> np.ndarray:
    gray = np.full((h, w), 255, np.uint8)
    gray[30:90, 50:60] = 0
    gray[40:50, 60:150] = 90
    return gray


def test_transparent_and_white_background_give_the_same_input() -> None:
    gray = _drawing()
    ink_alpha = 255 - gray
    transparent = np.zeros((*gray.shape, 4), np.uint8)  # the canvas: black ink, alpha = coverage
    transparent[..., 3] = ink_alpha
    transparent[..., :3][ink_alpha == 0] = (12, 200, 77)  # colour under alpha 0 must not matter
    white = np.stack([gray] * 3 + [np.full_like(gray, 255)], axis=2)
    a, _ = preprocess(transparent)
    b, _ = preprocess(white)
    np.testing.assert_allclose(a, b, atol=1 / 255 + 1e-6)


def test_gray_rgb_rgba_and_pil_give_the_same_input() -> None:
    gray = _drawing()
    rgb = np.stack([gray] * 3, axis=2)
    rgba = np.concatenate([rgb, np.full((*gray.shape, 1), 255, np.uint8)], axis=2)
    ref, _ = preprocess(gray)
    for variant in (
        rgb,
        rgba,
        gray[..., None],
        Image.fromarray(gray),
        Image.fromarray(rgb),
        Image.fromarray(rgba),
        Image.fromarray(gray).convert("P"),
        Image.fromarray(rgba).convert("LA"),
    ):
        got, _ = preprocess(variant)
        np.testing.assert_allclose(got, ref, atol=1 / 255 + 1e-6)


def test_model_input_layout() -> None:
    x, _ = preprocess(_drawing())
    assert x.shape == (3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x[0], x[1])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 10), np.uint8), "empty"),
        (np.zeros((10, 0, 3), np.uint8), "empty"),
        (np.zeros((10, 10), np.float32), "uint8"),
        (np.zeros((10, 10, 5), np.uint8), "shaped"),
        (np.zeros((10,), np.uint8), "shaped"),
        ("not an image", "PIL image or a numpy array"),
    ],
)
def test_bad_input_raises_a_clear_value_error(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        preprocess(bad)  # type: ignore[arg-type]


def test_blank_canvas_detection() -> None:
    transparent = np.zeros((50, 50, 4), np.uint8)
    assert is_blank(to_gray_on_white(transparent))
    assert is_blank(np.full((50, 50), 255, np.uint8))
    drawn = transparent.copy()
    drawn[10:20, 10:12, 3] = 255
    assert not is_blank(to_gray_on_white(drawn))
    assert to_gray_on_white(drawn)[15, 11] == 0
    faint = drawn.copy()
    faint[..., 3] //= 6  # a light pencil: grey 213 on white, still a drawing
    assert not is_blank(to_gray_on_white(faint))
    assert to_gray_on_white(to_gray_on_white(faint)).min() == 213  # white paper is never "cleaned"


def _digit_mask(label: str = "7", size: tuple[int, int] = (400, 300), stroke: float = 10.0) -> np.ndarray:
    """True where a rendered digit's ink is (from the shared test renderer)."""
    from .conftest import render_digit_canvas

    return render_digit_canvas(label, size=size, stroke=stroke, box=(150, 60, 260, 250))[..., 3] > 128


def test_a_plain_canvas_passes_unchanged() -> None:
    gray = np.full((300, 400), 255, np.uint8)
    gray[_digit_mask()] = 0
    assert to_gray_on_white(gray) is gray  # not even copied
    rgb = np.stack([gray] * 3, axis=2)
    np.testing.assert_array_equal(to_gray_on_white(rgb), gray)


def test_ink_on_a_lit_gradient_becomes_ink_on_white_paper() -> None:
    mask = _digit_mask()
    paper = np.tile(np.linspace(110, 235, 400), (300, 1))  # a photo lit from the right
    photo = np.where(mask, paper * 0.25, paper).astype(np.uint8)
    out = to_gray_on_white(photo)
    assert np.percentile(out[~mask], 5) >= 250, "the shading must be gone"
    assert np.median(out[mask]) < 80, "the ink must stay dark"


def test_white_on_black_is_inverted() -> None:
    mask = _digit_mask()
    board = np.where(mask, 240, 15).astype(np.uint8)
    out = to_gray_on_white(np.stack([board] * 3, axis=2))
    assert np.median(out[~mask]) >= 235 and np.median(out[mask]) <= 30


def test_blue_ballpoint_on_a_photo_of_lined_paper_keeps_the_ink_and_drops_the_lines() -> None:
    mask = _digit_mask()
    light = np.tile(np.linspace(0.78, 0.95, 400), (300, 1))[..., None]  # lit from one side
    page = (np.full((300, 400, 3), (250, 249, 242)) * light).astype(np.uint8)
    lines = np.zeros((300, 400), bool)
    lines[::28] = lines[1::28] = True
    page[lines & ~mask] = (np.array([170, 200, 240]) * light[lines & ~mask]).astype(np.uint8)  # blue rules
    page[mask] = (25, 45, 150)  # blue ballpoint
    out = to_gray_on_white(page)
    assert np.percentile(out[lines & ~mask], 10) >= 235, "ruled lines must turn to paper"
    assert np.median(out[mask]) < 90


def test_a_one_pixel_stroke_on_a_large_canvas_stays_visible_in_the_letterbox() -> None:
    canvas = np.full((800, 1100), 255, np.uint8)
    canvas[200:600, 550] = 0  # a 1-px "1", shrunk ~5.7x into 192 px
    square, _ = letterbox_gray(canvas)
    assert square.min() <= 10, "ink normalisation makes the faint line black"
    blank, _ = letterbox_gray(np.full((800, 1100), 250, np.uint8))
    assert blank.min() == 250, "paper without ink is left alone"


def _found(square: np.ndarray) -> np.ndarray:
    found = ink_box(square, level=128)
    assert found is not None, "no ink in the square"
    return found


def test_small_writing_on_a_wide_canvas_keeps_its_size() -> None:
    """Framing: 30-px digits far from the rest of an 800-px canvas are not shrunk with it (the
    whole canvas letterboxed would make them 7 px), and boxes map back exactly."""
    canvas = np.full((300, 800), 255, np.uint8)
    canvas[200:230, 600:604] = 0  # a "1" 30 px tall
    canvas[200:230, 620:640] = 0
    square, lb = letterbox_gray(canvas)
    found = _found(square)
    assert found[3] - found[1] == 30 and found[2] - found[0] == 40
    np.testing.assert_allclose(lb.to_source(found[None])[0], [600, 200, 640, 230], atol=1e-9)
    assert lb.frame[0] > 0 and lb.frame[2] < 800, "the frame is the ink's, not the canvas's"


def test_a_speck_is_not_enlarged_and_a_large_drawing_keeps_a_margin() -> None:
    speck = np.full((400, 400), 255, np.uint8)
    speck[200:203, 100:103] = 0
    square, lb = letterbox_gray(speck)
    assert lb.scale_x == lb.scale_y == 1.0
    np.testing.assert_array_equal(_found(square)[2:] - _found(square)[:2], [3, 3])
    big = np.full((800, 1100), 255, np.uint8)
    big[50:750, 100:1000] = 0
    square, lb = letterbox_gray(big)
    x1, y1, x2, y2 = _found(square)
    assert min(x1, y1, INPUT_SIZE - x2, INPUT_SIZE - y2) >= 10, "a margin of paper around the ink"
    assert lb.scale_x == pytest.approx(INPUT_SIZE / (lb.frame[2] - lb.frame[0]), rel=0.01)


def test_a_blank_canvas_frames_the_whole_canvas_and_frames_must_be_inside_it() -> None:
    _, lb = letterbox_gray(np.full((300, 700), 255, np.uint8))
    assert lb.frame == (0, 0, 700, 300) and lb.scale_x == pytest.approx(INPUT_SIZE / 700, rel=0.01)
    for frame in ((-1, 0, 10, 10), (0, 0, 701, 10), (5, 5, 5, 10)):
        with pytest.raises(ValueError, match="not a non-empty part"):
            Letterbox.fit(700, 300, frame=frame)


def test_a_larger_input_widens_wide_ink_but_not_a_compact_drawing() -> None:
    """At a 256 input a square drawing keeps the size a 192 input gives it; a row of digits
    fills the wider input; at 192 the cap changes nothing."""
    drawing = np.full((600, 900), 255, np.uint8)
    drawing[100:500, 200:600] = 0  # a 400x400 square: its frame's sides are equal
    _, at_192 = letterbox_gray(drawing, 192)
    _, at_256 = letterbox_gray(drawing, 256)
    assert at_256.frame == at_192.frame
    short_side = min(at_256.frame[2] - at_256.frame[0], at_256.frame[3] - at_256.frame[1])
    assert at_256.resized_height == at_192.resized_height == COMPACT_INPUT_PX
    assert at_256.scale_y == pytest.approx(COMPACT_INPUT_PX / short_side)
    row = np.full((600, 900), 255, np.uint8)
    row[250:350, 50:850] = 0  # 800x100: wide ink
    _, wide = letterbox_gray(row, 256)
    assert wide.resized_width == 256 and wide.scale_x == pytest.approx(256 / (wide.frame[2] - wide.frame[0]))
    for ink in (drawing, row):
        _, capped = letterbox_gray(ink, 192)
        plain = Letterbox.fit(900, 600, 192, capped.frame)
        assert capped == plain, "at 192 the cap is a no-op"


def test_unlabelled_ink_is_every_stroke_no_box_touches_each_whole() -> None:
    square = np.full((60, 60), 255, np.uint8)
    square[10:20, 10:12] = 0  # inside the box
    square[10:12, 12:30] = 0  # joined to it, running out of the box: a cut-off tail
    square[39:50, 10:12] = 0  # one pixel of paper below the box
    square[30:50, 40:42] = 0  # far away
    square[5, 50] = 240  # paper-light: not ink
    box = np.array([[9.0, 9.0, 20.0, 38.0]])
    far = np.zeros((60, 60), bool)
    far[30:50, 40:42] = True
    below = np.zeros((60, 60), bool)
    below[39:50, 10:12] = True
    ink = ink_mask(square)
    np.testing.assert_array_equal(unlabelled_ink(ink, box, clearance=0), far | below)
    np.testing.assert_array_equal(unlabelled_ink(ink, box, clearance=2), far)
    np.testing.assert_array_equal(unlabelled_ink(ink, np.zeros((0, 4)), 2), square < 235)


def test_ink_under_keeps_the_canvas_ink_under_a_mask_of_the_letterbox() -> None:
    gray = np.full((400, 800), 255, np.uint8)
    gray[100:300, 100:110] = 0  # a bar, to be whitened
    gray[50:80, 600:620] = 0  # small writing, to be kept with its light edge
    gray[50:80, 620] = 180
    square, letterbox = letterbox_gray(gray)
    mask = unlabelled_ink(ink_mask(square), letterbox.to_input(np.array([[100.0, 100.0, 110.0, 300.0]])), 1)
    out = ink_under(gray, mask, letterbox)
    expected = np.full_like(gray, 255)
    expected[50:80, 600:621] = gray[50:80, 600:621]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(ink_under(gray, np.zeros_like(mask), letterbox), np.full_like(gray, 255))


def test_rows_move_between_two_letterboxes_of_one_canvas() -> None:
    """A box seen by a zoomed letterbox, moved into the first one's input pixels, is where the
    first letterbox puts that canvas box; the other columns stay."""
    first = Letterbox.around_ink(1100, 800, np.array([50.0, 40.0, 1000.0, 760.0]))
    second = Letterbox.around_ink(1100, 800, np.array([850.0, 90.0, 990.0, 130.0]))
    assert second.scale_x > 3 * first.scale_x
    canvas_box = np.array([[900.0, 100.0, 918.0, 126.0]])
    seen = second.to_input(canvas_box)[0]
    rows = np.array(
        [[(seen[0] + seen[2]) / 2, (seen[1] + seen[3]) / 2, seen[2] - seen[0], seen[3] - seen[1], 0.9, 0.5]],
        np.float32,
    )
    moved = second.rows_into(rows, first)
    cx, cy, w, h = moved[0, :4]
    np.testing.assert_allclose(
        [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], first.to_input(canvas_box)[0], atol=1e-3
    )
    np.testing.assert_array_equal(moved[:, 4:], rows[:, 4:])


def test_ink_under_takes_the_light_edge_of_a_stroke_along() -> None:
    """At scale 1 the mask is the stroke itself; the light edge beside it (paper in the mask)
    comes along, and nothing a pixel further out."""
    gray = np.full((100, 100), 255, np.uint8)
    gray[20:40, 30:33] = 0
    gray[20:40, 33] = 245  # light edge
    gray[20:40, 34] = 100  # another stroke, just past the edge
    letterbox = Letterbox.fit(100, 100, frame=(10, 10, 90, 90), max_scale=1.0)
    mask = np.zeros((INPUT_SIZE, INPUT_SIZE), bool)
    x1, y1, x2, y2 = letterbox.to_input(np.array([[30.0, 20.0, 33.0, 40.0]]))[0].astype(int)
    mask[y1:y2, x1:x2] = True
    out = ink_under(gray, mask, letterbox)
    expected = np.full_like(gray, 255)
    expected[20:40, 30:34] = gray[20:40, 30:34]
    np.testing.assert_array_equal(out, expected)


def test_ink_halves_cut_between_drawings_never_through_a_box() -> None:
    ink = np.zeros((100, 100), bool)
    for x in (10, 30, 50, 80):  # four strokes in a row; the middle of the ink is column 45
        ink[40:60, x : x + 4] = True
    halves = ink_halves(ink, np.zeros((0, 4)))
    assert halves is not None
    before, after = halves
    # The empty column nearest the middle: 46 (between the strokes at 30-33 and 50-53).
    np.testing.assert_array_equal(before | after, ink)
    assert not (before & after).any()
    assert before[:, :46].sum() == ink[:, :46].sum() and not before[:, 46:].any()
    # A box over the 30-53 strokes (one drawing): the cut moves past it, to column 54 or later.
    halves = ink_halves(ink, np.array([[29.5, 38.0, 54.0, 62.0]]))
    assert halves is not None
    before, after = halves
    assert before[:, 50:54].any() and not after[:, :54].any()
    # Tall ink is cut along a row; one box over everything leaves no cut.
    assert ink_halves(ink.T.copy(), np.zeros((0, 4))) is not None
    tall_before, _ = ink_halves(ink.T.copy(), np.zeros((0, 4))) or (None, None)
    assert tall_before is not None and tall_before[:46].any() and not tall_before[46:].any()
    assert ink_halves(ink, np.array([[0.0, 0.0, 100.0, 100.0]])) is None
    assert ink_halves(np.zeros((100, 100), bool), np.zeros((0, 4))) is None


def test_a_smaller_letterbox_shows_the_same_frame_smaller_and_centred() -> None:
    gray = np.full((800, 1100), 255, np.uint8)
    gray[200:600, 300:500] = 0  # a block 200 x 400
    square, first = letterbox_gray(gray)
    view = first.smaller(0.5)
    assert view.frame == first.frame
    assert view.scale_y == pytest.approx(first.scale_y / 2, rel=0.02)
    seen = view.apply(gray)
    drawn = ink_box(seen)
    assert drawn is not None
    np.testing.assert_allclose(drawn, view.to_input(np.array([[300.0, 200.0, 500.0, 600.0]]))[0], atol=1)
    before = ink_box(square)
    assert before is not None
    np.testing.assert_allclose((drawn[:2] + drawn[2:]) / 2, (before[:2] + before[2:]) / 2, atol=1)  # centred
    np.testing.assert_allclose(drawn[2:] - drawn[:2], (before[2:] - before[:2]) / 2, atol=1)  # half as large


def test_ink_parts_join_strokes_close_together() -> None:
    """Strokes with at most 2 x `join` empty pixels between them are one part (its box is its
    own pixels', x2 / y2 exclusive); further apart, two; no ink, no part."""
    mask = np.zeros((40, 60), bool)
    mask[5:20, 10] = True  # a bar
    mask[5, 13:18] = True  # a flag 2 empty px to its right: the same drawing from join 1
    mask[5:20, 30:33] = True  # 12 empty px further: another
    np.testing.assert_array_equal(ink_parts(mask, 1), [[10, 5, 18, 20], [30, 5, 33, 20]])
    np.testing.assert_array_equal(ink_parts(mask, 0), [[10, 5, 11, 20], [13, 5, 18, 6], [30, 5, 33, 20]])
    assert len(ink_parts(mask, 6)) == 1
    assert ink_parts(np.zeros((40, 60), bool), 2).shape == (0, 4)


def test_unlabelled_parts_are_the_ink_in_a_region_outside_every_box() -> None:
    """Ink under a box grown by the clearance is left out (pixel by pixel), ink outside the
    region too; parts come back in the image's pixels."""
    gray = np.full((100, 200), 255, np.uint8)
    gray[20:60, 30:34] = 0  # a labelled bar
    gray[20:60, 40:44] = 0  # an unlabelled one, 6 px right of the box
    gray[20:60, 150:154] = 0  # one outside the region
    gray[70:90, 60:64] = 230  # paper's grain, lighter than ink: no part
    box = np.array([[30.0, 20.0, 34.0, 60.0]])
    region = np.array([10.0, 5.0, 120.0, 100.0])
    np.testing.assert_array_equal(unlabelled_parts(gray, box, region, 2.0, 1), [[40, 20, 44, 60]])
    assert unlabelled_parts(gray, box, region, 10.0, 1).shape == (0, 4)  # the clearance covers it
    everything = np.array([0.0, 0.0, 200.0, 100.0])
    np.testing.assert_array_equal(unlabelled_parts(gray, box, everything, 2.0, 1)[:, 0], [40, 150])
