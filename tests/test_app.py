"""Page logic with Streamlit's AppTest. The canvas and the uploader are browser widgets, so the
tests hand the page their result through the very calls app.py makes."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import streamlit
from PIL import Image
from streamlit.testing.v1 import AppTest

from digit_detector.analysis import BLANK_HINT

from .conftest import REPO, render_digit_canvas

APP = str(REPO / "app.py")


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, onnx_weights: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    state: dict[str, Any] = {"canvas": None, "upload": None}
    monkeypatch.setenv("DIGIT_DETECTOR_FEEDBACK_DIR", str(tmp_path / "feedback"))
    streamlit.cache_resource.clear()  # the store is cached per process; each test gets its own

    def fake_canvas(**kwargs: Any) -> SimpleNamespace:
        assert kwargs["return_image_data"] is True and kwargs["background_color"] == "#FFFFFF"
        return SimpleNamespace(image_data=state["canvas"])

    real_uploader = streamlit.file_uploader

    def fake_uploader(*args: Any, **kwargs: Any) -> Any:
        real_uploader(*args, **kwargs)  # keep the widget on the page
        data = state["upload"]
        return None if data is None else SimpleNamespace(getvalue=lambda: data)

    # The real component registers browser assets, which only works under `streamlit run`;
    # the page gets a stand-in module with the same call.
    fake_module = types.ModuleType("streamlit_drawable_canvas")
    fake_module.st_canvas = fake_canvas  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake_module)
    monkeypatch.setattr(streamlit, "file_uploader", fake_uploader)
    monkeypatch.setenv("DIGIT_DETECTOR_WEIGHTS", str(onnx_weights))

    def run(canvas: np.ndarray | None = None, upload: bytes | None = None) -> AppTest:
        state["canvas"], state["upload"] = canvas, upload
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["feedback-open"] = True  # "Is this right?" opened, as a visitor would
        at.run()
        assert not at.exception, at.exception
        return at

    run.state = state  # type: ignore[attr-defined]  # tests change the canvas between reruns
    return run


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.info, *at.warning, *at.error, *at.code, *at.caption)]
    return "\n".join(str(p) for p in parts)


def test_empty_canvas_shows_a_hint_and_runs_no_inference(page) -> None:  # type: ignore[no-untyped-def]
    at = page(None)
    assert BLANK_HINT in [i.value for i in at.info]
    assert not at.table
    at = page(np.zeros((400, 400, 4), np.uint8))  # transparent, nothing drawn
    assert BLANK_HINT in [i.value for i in at.info]


def test_one_digit_is_detected_and_read(page) -> None:  # type: ignore[no-untyped-def]
    at = page(render_digit_canvas("7"))
    assert at.table, _texts(at)
    table = at.table[0].value
    assert len(table) >= 1
    assert [h.value for h in at.subheader] == ["Number read"]
    assert [c.value for c in at.code] == ["7"]
    assert "Server time" in _texts(at)


def test_corrupt_upload_gets_a_clear_message(page) -> None:  # type: ignore[no-untyped-def]
    at = page(None, upload=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert any("corrupted" in e.value or "not an image we can read" in e.value for e in at.error), _texts(at)


def test_upload_of_a_drawing_goes_through_the_same_path(page) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.fromarray(255 - render_digit_canvas("4")[..., 3]).save(buffer, format="PNG")
    at = page(None, upload=buffer.getvalue())
    assert len(at.table) == 1  # the upload tab's results (the canvas is blank)


def test_censored_detections_are_labelled_and_pixelated(monkeypatch: pytest.MonkeyPatch, page) -> None:  # type: ignore[no-untyped-def]
    """With a detector that reports a censored region, the table says so and the page shows
    the pixelated result (the pixels themselves are checked in test_inference)."""
    from digit_detector import Detection, inference

    def fake_decide(self: Any, inference: Any, *args: Any, **kwargs: Any) -> list:
        return [Detection("censored", 11, 0.97, (100.0, 100.0, 300.0, 300.0))]

    monkeypatch.setattr(inference.Detector, "decide", fake_decide)
    at = page(render_digit_canvas("8"))
    assert at.table[0].value["label"].tolist() == ["censored"]


def _feedback_keys(at: AppTest) -> dict[str, str]:
    """The feedback widgets' keys by role (they carry the drawing's digest)."""
    keys = [w.key for w in (*at.selectbox, *at.checkbox, *at.button) if w.key and w.key.startswith("fb-")]
    return {
        "box1": next(k for k in keys if k.endswith("-1")),
        "donate": next(k for k in keys if k.endswith("-donate")),
        "send": next(k for k in keys if k.endswith("-send")),
    }


def test_feedback_is_stored_only_after_opting_in_and_only_once(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from digit_detector.feedback.local import LocalStore

    at = page(render_digit_canvas("7"))
    keys = _feedback_keys(at)
    assert at.button(key=keys["send"]).disabled  # no opt-in yet: nothing can be sent
    at.checkbox(key=keys["donate"]).check().run()
    at.button(key=keys["send"]).click().run()
    assert not at.exception
    assert any("Thank you" in s.value for s in at.success), [e.value for e in at.error]
    store = LocalStore(tmp_path / "feedback")
    assert len(store.ids()) == 1
    item = store.get(store.ids()[0])
    assert item.width == 400 and item.height == 400
    # Consent is unticked and Send disabled until the drawing changes: no second copy.
    assert at.checkbox(key=keys["donate"]).value is False
    assert at.button(key=keys["send"]).disabled and at.checkbox(key=keys["donate"]).disabled
    page.state["canvas"] = render_digit_canvas("3")
    at.run()
    new = _feedback_keys(at)
    assert new["donate"] != keys["donate"] and at.checkbox(key=new["donate"]).value is False
    at.checkbox(key=new["donate"]).check().run()
    assert not at.button(key=new["send"]).disabled  # a new drawing can be sent


def test_feedback_answers_follow_the_drawing(page) -> None:  # type: ignore[no-untyped-def]
    """Drawn in two stages: the box's answer is the label of the finished drawing, not the
    first render's (Streamlit keeps a widget's value while its key stays the same)."""
    at = page(render_digit_canvas("7"))
    first = at.table[0].value["label"].tolist()[0]
    assert at.selectbox(key=_feedback_keys(at)["box1"]).value == first
    page.state["canvas"] = render_digit_canvas("4")
    at.run()
    second = at.table[0].value["label"].tolist()[0]
    assert second != first
    assert at.selectbox(key=_feedback_keys(at)["box1"]).value == second
    assert "Box 1 (shown as " + second + ")" in [s.label for s in at.selectbox]


def test_opt_out_stores_nothing(tmp_path: Path) -> None:
    from digit_detector.feedback.local import LocalStore
    from digit_detector.feedback.review import submit

    store = LocalStore(tmp_path / "fb")
    gray = 255 - render_digit_canvas("3")[..., 3]
    assert submit(store, gray, [((100.0, 60.0, 280.0, 330.0), 3)], corrected=False, opted_in=False) is None
    assert store.ids() == []
    assert list((tmp_path / "fb" / "images").iterdir()) == []


def test_messages_say_what_happened(page, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The slider hiding weak detections is not "nothing detected"; no download without boxes;
    an oversized upload gets a sentence, not a tiny icon."""
    from digit_detector.analysis import HIDDEN_BY_SLIDER

    canvas = render_digit_canvas("7")
    canvas[..., 3] = canvas[..., 3] // 6  # a faint drawing: weak detections only
    at = page(canvas)
    at.sidebar.slider[1].set_value(0.95).run()
    assert not at.table, "this faint drawing scores below 0.95"
    assert HIDDEN_BY_SLIDER in [w.value for w in at.warning], _texts(at)
    assert not at.get("download_button")
    at = page(None, upload=bytes(11 * 1024 * 1024))
    assert any(e.value.startswith("The file is 11.5 MB, over the 10 MB limit") for e in at.error), _texts(at)
    assert not any(e.value.startswith("upload") for e in at.error)


def test_the_feedback_box_builds_nothing_until_opened(page) -> None:  # type: ignore[no-untyped-def]
    at = AppTest.from_file(APP, default_timeout=60)
    page.state["canvas"] = render_digit_canvas("7")
    at.run()
    assert not [s for s in at.selectbox if (s.key or "").startswith("fb-")]
    at.session_state["feedback-open"] = True
    at.run()
    assert [s for s in at.selectbox if (s.key or "").startswith("fb-")]
