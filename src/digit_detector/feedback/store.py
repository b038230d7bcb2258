"""The feedback store interface (implementations: local.LocalStore, s3.S3Store)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Protocol

from .item import FeedbackError, FeedbackItem


class FeedbackStore(Protocol):
    """Where donated drawings go. Every method raises FeedbackError (never OSError) when the
    storage fails, with a message the page can show."""

    def add(self, item: FeedbackItem) -> str:
        """Store the item (all of it or nothing); returns its id."""
        ...

    def ids(self) -> list[str]: ...

    def get(self, item_id: str) -> FeedbackItem: ...

    def describe(self) -> str: ...


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn a storage failure (disk full, read-only folder, missing permission, broken index)
    into a FeedbackError that says what failed."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise FeedbackError(f"could not {action}: {exc}") from exc
