"""Local feedback store: a YOLO-format folder plus a SQLite index.

Writes are atomic (temp file + rename, index row last, in one IMMEDIATE transaction that also
checks the size cap), so concurrent sessions or processes never see half an item, and a failed
write leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
from pathlib import Path

from .item import (
    MAX_ITEM_BYTES,
    MAX_TOTAL_BYTES,
    FeedbackError,
    FeedbackItem,
    StoreFullError,
    check_item_id,
    parse_item,
    validate_item,
)
from .store import storage_errors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    day TEXT NOT NULL,
    kind TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    objects INTEGER NOT NULL,
    bytes INTEGER NOT NULL
)
"""


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class LocalStore:
    def __init__(
        self, root: Path, max_item_bytes: int = MAX_ITEM_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES
    ) -> None:
        self.root = Path(root)
        self.max_item_bytes = max_item_bytes
        self.max_total_bytes = max_total_bytes
        self._local = threading.local()
        with storage_errors(f"open the feedback folder {self.root}"):
            (self.root / "images").mkdir(parents=True, exist_ok=True)
            (self.root / "labels").mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.root / "index.sqlite", timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def describe(self) -> str:
        return f"local folder {self.root}"

    def add(self, item: FeedbackItem) -> str:
        validate_item(item, self.max_item_bytes)  # checks the id too: never a path
        with storage_errors(f"store the drawing in {self.root}"):
            return self._add(item)

    def _add(self, item: FeedbackItem) -> str:
        image_path = self.root / "images" / f"{item.item_id}.png"
        label_path = self.root / "labels" / f"{item.item_id}.txt"
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # one writer at a time: the size check and insert are atomic
        try:
            used = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM items").fetchone()[0]
            if used + item.size > self.max_total_bytes:
                raise StoreFullError(
                    f"the feedback store is full ({used / 1e6:.1f} of {self.max_total_bytes / 1e6:.1f} MB); "
                    "thank you, but no more drawings can be accepted right now"
                )
            if db.execute("SELECT 1 FROM items WHERE id = ?", (item.item_id,)).fetchone():
                raise FeedbackError(f"an item with id {item.item_id} already exists")
            _atomic_write(image_path, item.png)
            _atomic_write(label_path, item.label_text().encode())
            db.execute(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                (item.item_id, item.day, item.kind, item.width, item.height, len(item.class_ids), item.size),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            for path in (image_path, label_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            raise
        return item.item_id

    def ids(self) -> list[str]:
        with storage_errors(f"list the feedback in {self.root}"):
            return [r[0] for r in self._db().execute("SELECT id FROM items ORDER BY rowid")]

    def get(self, item_id: str) -> FeedbackItem:
        check_item_id(item_id)
        with storage_errors(f"read item {item_id} from {self.root}"):
            row = self._db().execute("SELECT day, kind FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise KeyError(item_id)
            png = (self.root / "images" / f"{item_id}.png").read_bytes()
            labels = (self.root / "labels" / f"{item_id}.txt").read_text()
        return parse_item(item_id, png, labels, day=row[0], kind=row[1])

    def total_bytes(self) -> int:
        with storage_errors(f"read the size of {self.root}"):
            return int(self._db().execute("SELECT COALESCE(SUM(bytes), 0) FROM items").fetchone()[0])
