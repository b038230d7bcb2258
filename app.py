"""digit-draw-detect: draw on the canvas, see every digit (and every other drawing) detected.

UI only: layout, widgets and session state. All logic lives in `digit_detector`.
Run with `make run` (or `streamlit run app.py`).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import streamlit_drawable_canvas

from digit_detector import CLASS_NAMES, Detector, WeightsError
from digit_detector.analysis import Analysis, analyse, warm_up
from digit_detector.canvas_edits import resize_factor, scaled, strokes, without_last_stroke
from digit_detector.classes import CLASS_ID_BY_NAME
from digit_detector.feedback import DonationGuard, FeedbackError, FeedbackStore, store_from_env
from digit_detector.feedback.review import describe_position, missed_object_proposals, submit
from digit_detector.image_io import MAX_PIXELS, MAX_UPLOAD_BYTES, ImageLoadError, load_image
from digit_detector.postprocess import CENSORED_CONF, DEFAULT_CONF

HERE = Path(__file__).resolve().parent
BLANK_PIXEL = np.full((1, 1, 3), 255, np.uint8)
MODEL_CARD = HERE / "docs" / "MODEL_CARD.md"
AUTO = "Fit the screen"
CANVAS_SIZES = {"Square 400 x 400": (400, 400), "Wide 700 x 300": (700, 300), "Phone 340 x 340": (340, 340)}
PHONE_COLUMN = 400  # columns narrower than this get a phone-sized canvas
NOT_AN_OBJECT = "(not an object)"
IGNORE = "(ignore)"
INTRO = (
    "Draw digits on the canvas with a mouse, pen or finger: each one is boxed and the digits are "
    'read as a number. Any other drawing is labelled "other"; an obscene one is pixelated.'
)
# Two fixes to the canvas component, which renders in a shadow root (the page's CSS and
# listeners cannot reach into it, so they are added there, once per canvas):
# - its toolbar (undo, redo, clear) only shows on mouse hover and sits over the canvas's
#   top-right corner, where on a touch screen it is invisible yet takes taps. Pinned above the
#   canvas it is visible on every device and never covers the drawing;
# - it sends the drawing 200 ms after each pen-up (a fixed debounce), half of the time a visitor
#   waits for the number. At the end of a stroke on the canvas the script presses the toolbar's
#   own "Update the app" button, which sends at once; without the script the debounce still sends.
CANVAS_SCRIPT = """
<script>
(() => {
  if (window.canvasTweaks) return;  // once per page, however often this element renders
  const css = `.dc-root { margin-top: 3.1rem; }
    .dc-toolbar, .dc-root:hover > .dc-toolbar { opacity: 1 !important; top: -3.05rem !important; }`;
  const sendOnPenUp = (root) => {
    let drawing = false;
    root.addEventListener("pointerdown", (e) => {
      drawing = e.target.classList && e.target.classList.contains("upper-canvas");
    }, true);
    window.addEventListener("pointerup", () => {
      if (!drawing) return;
      drawing = false;
      // After the canvas's own pen-up handlers (same event, then their microtasks).
      setTimeout(() => {
        const send = root.querySelector('button[title="Update the app with this drawing"]');
        if (send) send.click();
      }, 0);
    }, true);
  };
  // Shadow roots hide their changes from a MutationObserver on the page: look every 250 ms.
  window.canvasTweaks = setInterval(() => document.querySelectorAll("*").forEach((el) => {
    const root = el.shadowRoot;
    if (root && root.querySelector(".dc-root") && !root.getElementById("pinned-toolbar")) {
      const style = document.createElement("style");
      style.id = "pinned-toolbar";
      style.textContent = css;
      root.appendChild(style);
      sendOnPenUp(root);
    }
  }), 250);
})();
</script>
"""
# Reports the width of the column it sits in (and again when it changes), so the canvas fits it.
width_probe = st.components.v2.component(
    "digit_draw_detect.width_probe",
    html="<div></div>",
    js="""
export default function ({ parentElement, setStateValue }) {
  const box = parentElement.querySelector("div");  // parentElement may be a shadow root
  const report = () => {
    const width = Math.round(box.getBoundingClientRect().width);
    if (width > 0) setStateValue("width", width);
  };
  report();
  const observer = new ResizeObserver(report);
  observer.observe(box);
  return () => observer.disconnect();
}
""",
)


@st.cache_resource(show_spinner="Loading the detector...")
def get_detector() -> Detector:
    detector = Detector()
    # The first visitor's first stroke should not pay for first runs: the model's, the
    # drawing code's, and the table's conversion (pandas and Arrow are imported on first use).
    warm_up(detector)
    import pandas as pd
    import pyarrow as pa

    pa.Table.from_pandas(pd.DataFrame([{"box": 1, "label": "7", "score": 0.5}]))
    return detector


def detector_or_stop() -> Detector:
    try:
        return get_detector()
    except WeightsError as exc:
        st.error(f"The detector could not be loaded: {exc}")
        st.stop()
        raise  # unreachable; st.stop() ends the run


@st.cache_resource(show_spinner=False)
def get_feedback_store() -> FeedbackStore | None:
    return store_from_env()


def controls_ui() -> tuple[int, float, str]:
    with st.sidebar:
        st.header("Settings")
        stroke = st.slider("Stroke width", 2, 32, 12, help="Pen width in canvas pixels")
        conf = st.slider(
            "Confidence threshold",
            0.05,
            0.95,
            float(DEFAULT_CONF),
            0.05,
            help="Hide digits and other drawings scored below this. The default comes from the "
            f"model's precision-recall curve. Obscene drawings are pixelated from {CENSORED_CONF:.2f} "
            "whatever this says.",
        )
        size_name = st.selectbox("Canvas size", [AUTO, *CANVAS_SIZES], key="canvas-size")
    return stroke, conf, size_name


def canvas_size(size_name: str, column_width: int | None) -> tuple[int, int]:
    """The chosen size, shrunk to the column; "fit" picks the phone size in narrow columns."""
    if size_name == AUTO:
        narrow = column_width is not None and column_width < PHONE_COLUMN
        size_name = "Phone 340 x 340" if narrow else "Square 400 x 400"
    width, height = CANVAS_SIZES[size_name]
    if column_width is not None and column_width < width:
        factor = max(200, column_width) / width
        width, height = round(width * factor), round(height * factor)
    return width, height


def canvas_ui(stroke: int, size_name: str) -> tuple[np.ndarray | None, tuple[int, int]]:
    """The drawing canvas; returns its RGBA pixels (None before the first stroke) and its size.
    A size change keeps the drawing, scaled."""
    probe = width_probe(key="canvas-column", default={"width": None}, on_width_change=lambda: None)
    size = canvas_size(size_name, probe.get("width") if probe else None)
    state = st.session_state
    last_size, last_drawing = state.get("canvas-shown-size"), state.get("canvas-drawing")
    if last_size and tuple(last_size) != size and strokes(last_drawing):
        state["canvas-initial"] = scaled(last_drawing, resize_factor(last_size, size))
    state["canvas-shown-size"] = size
    result = streamlit_drawable_canvas.st_canvas(
        stroke_width=stroke,
        stroke_color="#000000",
        background_color="#FFFFFF",
        drawing_mode="freedraw",
        width=size[0],
        height=size[1],
        initial_drawing=state.get("canvas-initial"),
        return_image_data=True,
        update_streamlit=True,
        key=f"canvas-{state.get('canvas-generation', 0)}",
    )
    st.html(CANVAS_SCRIPT, unsafe_allow_javascript=True)
    state["canvas-drawing"] = getattr(result, "json_data", None)
    return (None if result is None else result.image_data), size


def canvas_buttons_ui() -> None:
    """Undo and Clear, side by side on every screen (the toolbar above the canvas has them too)."""
    row = st.container(horizontal=True)
    drawn = bool(strokes(st.session_state.get("canvas-drawing")))
    row.button("Undo last stroke", disabled=not drawn, on_click=_undo, width="stretch")
    row.button("Clear canvas", on_click=_clear, width="stretch")


def _undo() -> None:
    # Callbacks run before the page is drawn again: the canvas then reloads this drawing.
    st.session_state["canvas-initial"] = without_last_stroke(st.session_state.get("canvas-drawing"))


def _clear() -> None:
    st.session_state["canvas-generation"] = st.session_state.get("canvas-generation", 0) + 1
    st.session_state["canvas-initial"] = None
    st.session_state["canvas-drawing"] = None


def reading_line(analysis: Analysis) -> str:
    """One short line: the number read, or what was found."""
    if analysis.blank:
        return "Draw something to start."
    if analysis.numbers:
        return "Number: " + " / ".join(analysis.numbers)
    if analysis.detections:
        found = sorted({d.label for d in analysis.detections})
        return "Found: " + ", ".join(found) + " (no digits)"
    return "Nothing detected yet."


def drawing_id(analysis: Analysis) -> str:
    """A short digest of the drawing: widget keys and the reading carry it, so they follow a new
    drawing (and a browser test can tell the reading of one drawing from the next)."""
    return "" if analysis.gray is None else hashlib.sha1(analysis.gray.tobytes()).hexdigest()[:12]


def live_reading_ui(analysis: Analysis, drawing: str) -> None:
    """The reading right under the canvas (in the first screen on a phone), announced to screen
    readers when it changes; `drawing` is the drawing's `drawing_id`."""
    text = html.escape(reading_line(analysis))
    st.html(
        f'<p role="status" aria-live="polite" data-drawing="{drawing}" '
        f'style="margin:0;font-size:1.25rem"><b>{text}</b></p>'
    )


def results_ui(analysis: Analysis, elapsed_ms: float, key: str) -> None:
    if analysis.blank:
        st.info(analysis.message)
        # The page's image, code and table elements are loaded on first use, which made the
        # first result of a session ~0.8 s slower than the next ones: load them now, unseen.
        with st.container(height=1, border=False):
            st.image(BLANK_PIXEL, alt="")
        return
    st.subheader("Number read", anchor=False)
    if analysis.numbers:
        for line in analysis.numbers:
            st.code(line, language=None)
    else:
        st.markdown("No digits read." if analysis.detections else "-")
    png = b""
    if analysis.annotated is not None:
        buffer = io.BytesIO()
        analysis.annotated.save(buffer, format="PNG", compress_level=1)  # line art: PNG, not JPEG
        png = buffer.getvalue()  # shown and offered for download: encoded once
        st.image(png, caption="Detections, numbered in reading order", alt=alt_text(analysis))
    if analysis.censor_note:
        st.info(analysis.censor_note)
    if analysis.message:
        st.warning(analysis.message)
    if analysis.detections:
        st.table(analysis.table(), hide_index=True)
        st.download_button(
            "Download annotated image",
            png,
            file_name="detections.png",
            mime="image/png",
            key=f"download-{key}",
        )
    st.caption(f"Server time for this result: {elapsed_ms:.1f} ms")


def alt_text(analysis: Analysis) -> str:
    if not analysis.detections:
        return "Your drawing; nothing detected."
    parts = [f"{i}: {d.label} ({d.score:.0%})" for i, d in enumerate(analysis.detections, 1)]
    return f"Your drawing with {len(parts)} boxes. " + "; ".join(parts) + ". " + reading_line(analysis)


def run_analysis(image: object, conf: float, display_width: int) -> tuple[Analysis, float]:
    start = time.perf_counter()
    analysis = analyse(image, detector_or_stop(), conf=conf, display_width=display_width)  # type: ignore[arg-type]
    return analysis, (time.perf_counter() - start) * 1000


def _send_feedback(
    store: FeedbackStore, gray: np.ndarray, labelled: list[Any], corrected: bool, digest: str
) -> None:
    """Send's callback (runs before the page is drawn again, so it may untick consent)."""
    state = st.session_state
    guard = state.setdefault("donation-guard", DonationGuard())
    try:
        item_id = submit(store, gray, labelled, corrected=corrected, opted_in=True, guard=guard)
    except FeedbackError as exc:
        state["feedback-result"] = (digest, False, f"Not stored: {exc}")
    else:
        state["feedback-result"] = (digest, True, f"Thank you! Stored as {item_id}.")
    state[f"fb-{digest}-donate"] = False


def feedback_ui(analysis: Analysis, digest: str) -> None:
    """'Is this right?': confirm or correct each numbered box, label missed ink, opt in to donate.
    Widget keys carry the drawing's digest: a new stroke resets every answer and the consent."""
    try:
        store = get_feedback_store()
    except FeedbackError as exc:
        st.caption(f"Feedback is unavailable: {exc}")
        return
    if store is None or analysis.gray is None:
        return  # turned off by DIGIT_DETECTOR_FEEDBACK=off
    gray = analysis.gray
    panel = st.expander("Is this right? Help improve the model", key="feedback-open", on_change="rerun")
    if not panel.open:
        return  # its widgets and the ink proposals cost a third of a run: only when opened
    with panel:
        labelled: list[tuple[tuple[float, float, float, float], int]] = []
        corrected = False
        options = [*CLASS_NAMES, NOT_AN_OBJECT]
        for i, d in enumerate(analysis.detections, 1):
            choice = st.selectbox(
                f"Box {i} (shown as {d.label})", options, index=d.class_id, key=f"fb-{digest}-{i}"
            )
            corrected |= choice != d.label
            if choice != NOT_AN_OBJECT:
                labelled.append((d.box, CLASS_ID_BY_NAME[choice]))
        for j, box in enumerate(missed_object_proposals(gray, analysis.detections)):
            choice = st.selectbox(
                f"Ink without a box, {describe_position(box, gray.shape)}: what is it?",
                [IGNORE, *CLASS_NAMES],
                key=f"fb-{digest}-miss-{j}",
            )
            if choice != IGNORE:
                corrected = True
                labelled.append((box, CLASS_ID_BY_NAME[choice]))
        sent = st.session_state.get("feedback-result")
        already = sent is not None and sent[0] == digest and sent[1]
        donate = st.checkbox(
            "Donate this drawing with these labels. Stored: the drawing, the labels, a random id "
            "and today's date. Not stored: your IP address, cookies, or anything about you.",
            key=f"fb-{digest}-donate",
            disabled=already,
        )
        st.button(
            "Send",
            disabled=already or not donate,
            key=f"fb-{digest}-send",
            on_click=_send_feedback,
            args=(store, gray, labelled, corrected, digest),
        )
        if sent is not None and sent[0] == digest:
            (st.success if sent[1] else st.error)(sent[2])


def upload_ui() -> bytes | None:
    st.markdown(
        "Works best with **dark ink on plain light paper**, cropped to the writing. Photos of paper "
        "are flattened and light-on-dark images inverted before detection."
    )
    upload = st.file_uploader("Upload a drawing (PNG, JPEG or WebP)", type=["png", "jpg", "jpeg", "webp"])
    st.caption(f"Up to {MAX_UPLOAD_BYTES // 2**20} MB and {MAX_PIXELS // 10**6} megapixels.")
    return None if upload is None else upload.getvalue()


def draw_tab_ui(stroke: int, conf: float, size_name: str) -> None:
    # Side by side when the canvas is at most 400 px wide (Streamlit stacks columns on a
    # phone); a wide canvas gets the full width, with the results below it.
    wide = CANVAS_SIZES.get(size_name, (0, 0))[0] > 400
    left, right = (st.container(), st.container()) if wide else st.columns([1.15, 1], gap="medium")
    with left:
        image, size = canvas_ui(stroke, size_name)
        analysis, ms = run_analysis(image, conf, display_width=size[0] if wide else min(size[0], 420))
        drawing = drawing_id(analysis)  # hashed once per run, for the reading and the feedback
        live_reading_ui(analysis, drawing)  # right under the canvas: in the first screen on a phone
        canvas_buttons_ui()
    with right:
        results_ui(analysis, ms, key="draw")
        if not analysis.blank:
            feedback_ui(analysis, drawing)


def upload_tab_ui(conf: float) -> None:
    data = upload_ui()
    if data is None:
        return
    try:
        picture = load_image(data)
    except ImageLoadError as exc:
        st.error(str(exc))
        return
    analysis, ms = run_analysis(picture, conf, display_width=min(700, picture.width))
    live_reading_ui(analysis, drawing_id(analysis))
    results_ui(analysis, ms, key="upload")


def draw_page() -> None:
    st.title("Draw a number", anchor=False)
    st.caption(INTRO)
    stroke, conf, size_name = controls_ui()
    draw_tab, upload_tab = st.tabs(["Draw", "Upload"])
    with draw_tab:
        draw_tab_ui(stroke, conf, size_name)
    with upload_tab:
        upload_tab_ui(conf)


def about_page() -> None:
    st.title("About", anchor=False)
    st.markdown(
        f"""
**What it does.** Draw on the canvas and a small detector finds every digit (0-9) and reads
them left to right as a number, one number per line of writing. Anything else you draw is
labelled **other**; a drawing that looks obscene is **pixelated** (from a score of
{CENSORED_CONF:.2f}, whatever the confidence slider says, because showing one costs more than
hiding a doodle).

**Tips.** Draw digits large and apart from each other; use Undo last stroke to fix a slip. On a
phone, the number appears right under the canvas.

**How it learned.** From handwriting and doodles recorded with pens, mice and fingers by
thousands of people (UNIPEN, UCI pen digits, Omniglot, Quick, Draw!), checked on people and
drawing categories it never saw. It can still be wrong, most often on digits that look alike
(1 and 7, 4 and 9) and on unusual doodles.

**Privacy.** Your drawing is processed in memory and not kept, unless you tick "Donate" under
a result and press Send: then the drawing and its labels are kept with a random id and the date
(no IP address, no cookies), to train better models.
"""
    )
    st.page_link(MODEL_CARD_PAGE, label="Read the model card: data, accuracy, limits")
    detector = detector_or_stop()
    st.caption(f"Model {detector.metadata.get('config', {}).get('name', '?')}.")


IMAGE_LINE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)\s*$")


def model_card_page() -> None:
    """docs/MODEL_CARD.md with its figures (Streamlit serves no files from docs/)."""
    if not MODEL_CARD.is_file():
        st.info("The model card is not included in this deployment.")
        return
    text_block: list[str] = []
    for line in MODEL_CARD.read_text(encoding="utf-8").splitlines():
        match = IMAGE_LINE.match(line.strip())
        figure = MODEL_CARD.parent / match.group(2) if match else None
        if figure is None or not figure.is_file():
            text_block.append(line)
            continue
        st.markdown("\n".join(text_block))
        text_block = []
        caption = match.group(1) if match else None
        st.image(str(figure), caption=caption, alt=caption)
    st.markdown("\n".join(text_block))


st.set_page_config(page_title="digit-draw-detect", page_icon="✏️", layout="wide")
MODEL_CARD_PAGE = st.Page(
    model_card_page, title="Model card", icon=":material/description:", url_path="model-card"
)
st.navigation(
    [
        st.Page(draw_page, title="Draw", icon=":material/draw:", default=True),
        st.Page(about_page, title="About", icon=":material/info:", url_path="about"),
        MODEL_CARD_PAGE,
    ]
).run()
