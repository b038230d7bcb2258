"""Opt-in feedback from app users: the store interface, a local store (YOLO files + SQLite
index) and an S3-compatible store, plus auto-annotation of ink into object boxes."""

from .store import FeedbackError, FeedbackItem, FeedbackStore, StoreFullError, make_item, store_from_env

__all__ = ["FeedbackError", "FeedbackItem", "FeedbackStore", "StoreFullError", "make_item", "store_from_env"]
