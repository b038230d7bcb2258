"""Opt-in feedback from app users. Imports point one way:
item (what an item is, validation) <- store (interface) <- local / s3 (stores) <- factory
(settings -> store); guard (per-session limits) and review (the app's box) use them;
export (YOLO training set, needs PyYAML) is for the CLI only."""

from .factory import FeedbackSettings, make_store, store_from_env
from .guard import DonationGuard
from .item import FeedbackError, FeedbackItem, StoreFullError, make_item
from .store import FeedbackStore

__all__ = [
    "DonationGuard",
    "FeedbackError",
    "FeedbackItem",
    "FeedbackSettings",
    "FeedbackStore",
    "StoreFullError",
    "make_item",
    "make_store",
    "store_from_env",
]
