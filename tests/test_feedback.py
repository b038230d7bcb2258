from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digit_detector.boxes import box_iou
from digit_detector.data.compose import draw_strokes
from digit_detector.feedback import FeedbackError, StoreFullError, make_item
from digit_detector.feedback.auto_annotate import propose_boxes
from digit_detector.feedback.export import export_yolo
from digit_detector.feedback.item import FeedbackItem, validate_item
from digit_detector.feedback.local import LocalStore

from .appserver import free_port
from .conftest import render_digit_canvas, tiny_train_args


def _drawing(seed: int = 0) -> np.ndarray:
    return 255 - render_digit_canvas("5", seed=seed)[..., 3]


def test_items_round_trip_through_the_local_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "fb")
    gray = _drawing()
    item = make_item(gray, [(100.0, 60.0, 260.0, 320.0)], [5], kind="corrected")
    item_id = store.add(item)
    assert store.ids() == [item_id] and len(item_id) == 32
    back = store.get(item_id)
    np.testing.assert_allclose(back.boxes, item.boxes, atol=0.01)
    assert back.class_ids.tolist() == [5] and back.kind == "corrected"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(back.png))), gray)
    out = tmp_path / "export"
    assert export_yolo(store, out) == 1
    assert (out / "data.yaml").exists() and (out / "labels" / f"{item_id}.txt").read_text().startswith("5 ")


def test_corrupt_or_oversized_submissions_leave_nothing_behind(tmp_path: Path) -> None:
    good = make_item(_drawing(), [(10.0, 10.0, 50.0, 50.0)], [1])
    cap = int(good.size * 2.5)  # room for two items
    store = LocalStore(tmp_path / "fb", max_item_bytes=50_000, max_total_bytes=cap)
    corrupt = FeedbackItem(
        png=b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        width=400,
        height=400,
        boxes=np.zeros((0, 4)),
        class_ids=np.zeros(0, np.int64),
    )
    with pytest.raises(FeedbackError, match="readable PNG"):
        store.add(corrupt)
    noise = np.random.default_rng(0).integers(0, 256, (400, 400), dtype=np.uint8)  # incompressible
    with pytest.raises(FeedbackError, match="limit"):
        store.add(
            FeedbackItem(
                png=make_item(noise, [], [], "confirmed").png if False else _png(noise),
                width=400,
                height=400,
                boxes=np.zeros((0, 4)),
                class_ids=np.zeros(0, np.int64),
            )
        )
    with pytest.raises(FeedbackError, match="inside the drawing"):
        make_item(_drawing(), [(10.0, 10.0, 500.0, 50.0)], [1])
    with pytest.raises(FeedbackError, match="class ids"):
        make_item(_drawing(), [(10.0, 10.0, 50.0, 50.0)], [12])
    store.add(good)
    with pytest.raises(StoreFullError, match="full"):
        for _ in range(10):
            store.add(make_item(_drawing(), [(10.0, 10.0, 50.0, 50.0)], [1]))
    ids = store.ids()
    files = sorted(p.name for p in (tmp_path / "fb" / "images").iterdir())
    assert files == sorted(f"{i}.png" for i in ids)
    assert sorted(p.name for p in (tmp_path / "fb" / "labels").iterdir()) == sorted(f"{i}.txt" for i in ids)
    assert len(ids) == 2 and store.total_bytes() <= cap


def _png(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def test_concurrent_writes_keep_every_item(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "fb")
    items = [make_item(_drawing(i % 3), [(10.0, 10.0, 60.0, 80.0)], [i % 12]) for i in range(40)]
    errors: list[BaseException] = []

    def worker(chunk: list[FeedbackItem]) -> None:
        try:
            for it in chunk:
                store.add(it)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(items[k::20],)) for k in range(20)]  # 20 writers
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(store.ids()) == sorted(i.item_id for i in items)
    assert len(list((tmp_path / "fb" / "images").iterdir())) == 40


def test_validate_rejects_mismatched_size() -> None:
    item = make_item(_drawing(), [], [])
    bad = FeedbackItem(png=item.png, width=10, height=10, boxes=item.boxes, class_ids=item.class_ids)
    with pytest.raises(FeedbackError, match="stated size"):
        validate_item(bad)


@pytest.mark.parametrize("label", ["4", "5", "7", "1", "3"])
def test_auto_annotation_finds_multi_part_digits(label: str) -> None:
    canvas = render_digit_canvas(label, size=(400, 400), box=(120, 60, 280, 340), stroke=12)
    gray = 255 - canvas[..., 3]
    ys, xs = np.nonzero(gray < 128)
    truth = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    boxes = propose_boxes(canvas)
    assert len(boxes) == 1, boxes
    assert box_iou(np.array(boxes), truth)[0, 0] > 0.9


def test_auto_annotation_separates_a_written_number() -> None:
    """Three digits side by side, with the detached top bar of a 5: three boxes, in order."""
    gray = np.full((300, 700), 255, np.uint8)
    truths = []
    for k, label in enumerate(("4", "5", "7")):
        part = (
            255
            - render_digit_canvas(label, size=(200, 300), box=(30, 40, 150, 260), stroke=10, seed=k)[..., 3]
        )
        gray[:, 20 + k * 220 : 220 + k * 220] = np.minimum(gray[:, 20 + k * 220 : 220 + k * 220], part)
        ys, xs = np.nonzero(part < 128)
        truths.append([20 + k * 220 + xs.min(), ys.min(), 20 + k * 220 + xs.max() + 1, ys.max() + 1])
    # a detached bar above the 5 (people lift the pen for it)
    draw_strokes(gray, [np.array([[280.0, 20.0], [340.0, 20.0]], np.float32)], 10)
    truths[1][1] = 15
    boxes = np.array(propose_boxes(gray))
    assert len(boxes) == 3, boxes
    ious = np.diag(box_iou(boxes, np.array(truths, float)))
    assert (ious > 0.9).all(), ious


def test_blank_drawing_has_no_proposals() -> None:
    assert propose_boxes(np.full((100, 100), 255, np.uint8)) == []


@pytest.fixture
def moto_endpoint():  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_s3_round_trip_against_a_local_moto_server(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("DIGIT_DETECTOR_S3_BUCKET", "feedback-test")
    monkeypatch.setenv("DIGIT_DETECTOR_S3_PREFIX", "drawings")
    monkeypatch.setenv("DIGIT_DETECTOR_S3_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("DIGIT_DETECTOR_FEEDBACK", "s3")
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="feedback-test")
    from digit_detector.feedback import store_from_env

    store = store_from_env()
    assert store is not None and store.describe() == "s3://feedback-test/drawings"
    item = make_item(_drawing(), [(100.0, 60.0, 260.0, 320.0), (5.0, 5.0, 40.0, 40.0)], [5, 10])
    store.add(item)
    assert store.ids() == [item.item_id]
    back = store.get(item.item_id)
    assert back.png == item.png and back.class_ids.tolist() == [5, 10]
    np.testing.assert_allclose(back.boxes, item.boxes, atol=0.01)
    assert export_yolo(store, tmp_path / "out") == 1


def test_feedback_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from digit_detector.feedback import store_from_env

    monkeypatch.setenv("DIGIT_DETECTOR_FEEDBACK", "off")
    assert store_from_env() is None


@pytest.mark.slow
def test_export_feedback_and_train_on_it(tmp_path: Path, stroke_dir: Path) -> None:
    import json

    from digit_detector.cli import main

    store = LocalStore(tmp_path / "fb")
    for seed in range(3):
        store.add(make_item(_drawing(seed), [(100.0, 60.0, 280.0, 330.0)], [5]))
    out = tmp_path / "exported"
    assert (
        main(
            [
                "data",
                "export-feedback",
                "--store",
                "local",
                "--feedback-dir",
                str(tmp_path / "fb"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(list((out / "images").iterdir())) == 3
    run = tmp_path / "run"
    args = tiny_train_args(stroke_dir, run, steps=3, batch=4, val_scenes=4)
    assert main([*args, "--extra-data", str(out), "--extra-weight", "0.5"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3
    from digit_detector.model.checkpoint import read_checkpoint

    assert read_checkpoint(run / "best.pt")["meta"]["data"]["extra_images"] == 3


def test_item_ids_that_are_not_32_hex_digits_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    import dataclasses

    store = LocalStore(tmp_path / "deep" / "fb")
    good = make_item(_drawing(), [(10.0, 10.0, 50.0, 50.0)], [1])
    for bad in ("../../x", "../" + good.item_id[3:], good.item_id.upper(), good.item_id + "0", ""):
        with pytest.raises(FeedbackError, match="invalid item id"):
            store.add(dataclasses.replace(good, item_id=bad))
        with pytest.raises(FeedbackError, match="invalid item id"):
            store.get(bad)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert all(w.startswith("deep/fb/index.sqlite") for w in written), written
    assert store.ids() == []


def test_storage_failures_become_feedback_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(FeedbackError, match="could not open the feedback folder"):
        LocalStore(blocker / "fb")
    store = LocalStore(tmp_path / "fb")
    import digit_detector.feedback.local as local

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.os, "replace", disk_full)
    with pytest.raises(FeedbackError, match="No space left on device"):
        store.add(make_item(_drawing(), [(10.0, 10.0, 50.0, 50.0)], [1]))
    monkeypatch.undo()
    assert store.ids() == [] and not list((tmp_path / "fb" / "images").iterdir())


def test_a_session_cannot_send_one_drawing_twice_or_more_than_20_an_hour(tmp_path: Path) -> None:
    from digit_detector.feedback import DonationGuard
    from digit_detector.feedback.review import submit

    now = [1000.0]
    guard = DonationGuard(clock=lambda: now[0])
    store = LocalStore(tmp_path / "fb")
    box = [((10.0, 10.0, 50.0, 50.0), 1)]
    first = submit(store, _drawing(0), box, corrected=False, opted_in=True, guard=guard)
    with pytest.raises(FeedbackError, match="already sent"):
        submit(store, _drawing(0), box, corrected=True, opted_in=True, guard=guard)
    assert store.ids() == [first]
    drawings = [np.roll(_drawing(0), k, axis=1) for k in range(1, 21)]  # 20 distinct drawings
    for gray in drawings[:19]:
        now[0] += 60
        submit(store, gray, box, corrected=False, opted_in=True, guard=guard)
    assert len(store.ids()) == 20
    with pytest.raises(FeedbackError, match="20 drawings this hour"):
        submit(store, drawings[19], box, corrected=False, opted_in=True, guard=guard)
    assert len(store.ids()) == 20
    now[0] = 1000.0 + 3600  # the first donation is an hour old
    submit(store, drawings[19], box, corrected=False, opted_in=True, guard=guard)
    assert len(store.ids()) == 21
    # Another visitor may send the same drawing: the guard is per session.
    submit(store, _drawing(0), box, corrected=False, opted_in=True, guard=DonationGuard(clock=lambda: now[0]))
    assert len(store.ids()) == 22


def test_local_store_defaults_to_persistent_storage_when_mounted(tmp_path: Path) -> None:
    from digit_detector.feedback.factory import default_local_dir

    assert default_local_dir(tmp_path) == tmp_path / "feedback"
    assert default_local_dir(tmp_path / "absent") == Path("feedback")
