"""digit-draw-detect: draw on the canvas, see every digit (and every other drawing) detected.

UI only: layout, widgets and session state. All logic lives in `digit_detector`.
Run with `make run` (or `streamlit run app.py`).
"""

from __future__ import annotations

import io
import time

import numpy as np
import streamlit as st
import streamlit_drawable_canvas

from digit_detector import CLASS_NAMES, Detector, WeightsError
from digit_detector.analysis import Analysis, analyse
from digit_detector.classes import CLASS_ID_BY_NAME
from digit_detector.feedback import DonationGuard, FeedbackError, FeedbackStore, store_from_env
from digit_detector.feedback.review import missed_object_proposals, submit
from digit_detector.image_io import MAX_PIXELS, MAX_UPLOAD_BYTES, ImageLoadError, load_image
from digit_detector.postprocess import DEFAULT_CONF

CANVAS_SIZES = {"Square 400 x 400": (400, 400), "Wide 700 x 300": (700, 300), "Phone 340 x 340": (340, 340)}
MODEL_CARD_URL = "docs/MODEL_CARD.md"


@st.cache_resource(show_spinner="Loading the detector...")
def get_detector() -> Detector:
    return Detector()


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


NOT_AN_OBJECT = "(not an object)"
IGNORE = "(ignore)"


def feedback_ui(analysis: Analysis) -> None:
    """'Is this right?': confirm or correct the labels, add missed objects, opt in to donate."""
    try:
        store = get_feedback_store()
    except FeedbackError as exc:
        st.caption(f"Feedback is unavailable: {exc}")
        return
    if store is None:
        return  # turned off by DIGIT_DETECTOR_FEEDBACK=off
    gray = analysis.gray
    assert gray is not None  # set whenever the canvas was not blank
    with st.expander("Is this right? Help improve the model"):
        labelled: list[tuple[tuple[float, float, float, float], int]] = []
        corrected = False
        options = [*CLASS_NAMES, NOT_AN_OBJECT]
        for i, d in enumerate(analysis.detections):
            x1, y1, x2, y2 = d.box
            choice = st.selectbox(
                f"Box {i + 1} at ({x1:.0f}, {y1:.0f})-({x2:.0f}, {y2:.0f})",
                options,
                index=d.class_id,
                key=f"fb-det-{i}",
            )
            corrected |= choice != d.label
            if choice != NOT_AN_OBJECT:
                labelled.append((d.box, CLASS_ID_BY_NAME[choice]))
        for j, box in enumerate(missed_object_proposals(gray, analysis.detections)):
            x1, y1, x2, y2 = box
            choice = st.selectbox(
                f"Missed ink at ({x1:.0f}, {y1:.0f})-({x2:.0f}, {y2:.0f}): what is it?",
                [IGNORE, *CLASS_NAMES],
                key=f"fb-miss-{j}",
            )
            if choice != IGNORE:
                corrected = True
                labelled.append((box, CLASS_ID_BY_NAME[choice]))
        donate = st.checkbox(
            "Donate this drawing with these labels. Stored: the drawing, the labels, a random id "
            "and today's date. Not stored: your IP address, cookies, or anything about you.",
            key="fb-donate",
        )
        if st.button("Send", disabled=not donate, key="fb-send"):
            try:
                guard = st.session_state.setdefault("donation_guard", DonationGuard())
                item_id = submit(store, gray, labelled, corrected=corrected, opted_in=donate, guard=guard)
            except FeedbackError as exc:
                st.error(f"Not stored: {exc}")
            else:
                st.success(f"Thank you! Stored as {item_id}.")


def is_phone() -> bool:
    agent = st.context.headers.get("User-Agent", "") if st.context.headers else ""
    return any(k in agent for k in ("iPhone", "Android", "Mobile"))


def controls_ui() -> tuple[int, float, tuple[int, int]]:
    with st.sidebar:
        st.header("Settings")
        stroke = st.slider("Stroke width", 2, 32, 12, help="Pen width in canvas pixels")
        conf = st.slider(
            "Confidence threshold",
            0.05,
            0.95,
            float(DEFAULT_CONF),
            0.05,
            help="Hide detections scored below this. The default comes from the model's "
            "precision-recall curve (see the model card).",
        )
        sizes = list(CANVAS_SIZES)
        size_name = st.selectbox("Canvas size", sizes, index=2 if is_phone() else 0)
    return stroke, conf, CANVAS_SIZES[size_name]


def canvas_ui(stroke: int, size: tuple[int, int]) -> np.ndarray | None:
    """The drawing canvas; returns its RGBA pixels (None before the first stroke)."""
    width, height = size
    if st.button("Clear canvas", help="Start over (the canvas toolbar also has undo and redo)"):
        st.session_state["canvas_generation"] = st.session_state.get("canvas_generation", 0) + 1
    result = streamlit_drawable_canvas.st_canvas(
        stroke_width=stroke,
        stroke_color="#000000",
        background_color="#FFFFFF",
        drawing_mode="freedraw",
        width=width,
        height=height,
        return_image_data=True,
        update_streamlit=True,
        key=f"canvas-{width}x{height}-{st.session_state.get('canvas_generation', 0)}",
    )
    return None if result is None else result.image_data


def results_ui(analysis: Analysis, elapsed_ms: float, key: str) -> None:
    if analysis.blank:
        st.info(analysis.message)
        return
    if analysis.annotated is not None:
        st.image(analysis.annotated, caption="Detections")
    if analysis.message:
        st.warning(analysis.message)
    if analysis.numbers:
        st.markdown("**Number read left to right:**")
        for line in analysis.numbers:
            st.code(line, language=None)
    if analysis.detections:
        st.dataframe(analysis.table(), hide_index=True, width="stretch")
    if analysis.annotated is not None:
        buffer = io.BytesIO()
        analysis.annotated.save(buffer, format="PNG")
        st.download_button(
            "Download annotated image",
            buffer.getvalue(),
            file_name="detections.png",
            mime="image/png",
            key=f"download-{key}",
        )
    st.caption(f"Server time for this result: {elapsed_ms:.1f} ms")


def run_analysis(image: object, conf: float, display_width: int) -> tuple[Analysis, float]:
    start = time.perf_counter()
    analysis = analyse(image, detector_or_stop(), conf=conf, display_width=display_width)  # type: ignore[arg-type]
    return analysis, (time.perf_counter() - start) * 1000


def upload_ui() -> bytes | None:
    upload = st.file_uploader("Upload a drawing (PNG, JPEG or WebP)", type=["png", "jpg", "jpeg", "webp"])
    st.caption(f"Up to {MAX_UPLOAD_BYTES // 2**20} MB and {MAX_PIXELS // 10**6} megapixels.")
    return None if upload is None else upload.getvalue()


def draw_page() -> None:
    st.title("Draw a number")
    stroke, conf, size = controls_ui()
    draw_tab, upload_tab = st.tabs(["Draw", "Upload"])
    with draw_tab:
        # Side by side for canvases up to 400 px (Streamlit stacks columns on a phone);
        # a wide canvas gets the full width, with the results below it.
        if size[0] <= 400:
            left, right = st.columns([size[0] + 24, 380], gap="medium")
        else:
            left = right = st.container()
        with left:
            image = canvas_ui(stroke, size)
        with right:
            analysis, ms = run_analysis(image, conf, display_width=min(size[0], 380))
            results_ui(analysis, ms, key="draw")
            if not analysis.blank:
                feedback_ui(analysis)
    with upload_tab:
        data = upload_ui()
        if data is not None:
            try:
                picture = load_image(data)
            except ImageLoadError as exc:
                st.error(str(exc))
            else:
                analysis, ms = run_analysis(picture, conf, display_width=min(700, picture.width))
                results_ui(analysis, ms, key="upload")


def about_page() -> None:
    st.title("About")
    st.markdown(
        f"""
Draw on the canvas and a small YOLOv3-family detector, bundled with the app, finds every digit
(0-9), every other drawing ("other") and every obscene drawing ("censored", pixelated in the
result). The digits are read left to right as a number, one line per line of writing.

**Classes:** {", ".join(f"`{n}`" for n in CLASS_NAMES)}

**How the model was trained:** from scratch, on 2 CPU cores, on canvases composed from real pen
and mouse stroke recordings (UNIPEN, UCI pendigits, Omniglot, Quick, Draw! and its appendix),
with exact boxes from the strokes. Validation uses writers the model never saw.
The [model card]({MODEL_CARD_URL}) lists the data and licenses, metrics and known failure cases.

**Privacy:** drawings are processed in memory and not stored, unless you tick "Donate" under a
result and press Send: then the drawing and its labels are kept with a random id and the date
(no IP address, no cookies). The operator can turn this off (`DIGIT_DETECTOR_FEEDBACK=off`).
"""
    )
    detector = detector_or_stop()
    source = detector.metadata.get("source", {})
    st.caption(
        f"Model: {detector.metadata.get('config', {}).get('name', '?')}, weights "
        f"{detector.weights.name}, commit {source.get('commit', '?')}"
    )


st.set_page_config(page_title="digit-draw-detect", page_icon="✏️", layout="wide")
st.navigation(
    [
        st.Page(draw_page, title="Draw", icon="✏️", default=True),
        st.Page(about_page, title="About", icon="ℹ️", url_path="about"),
    ]
).run()
