"""Which store to use: settings (from arguments or the environment) -> a store."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .item import FeedbackError
from .store import FeedbackStore

ENV_KIND = "DIGIT_DETECTOR_FEEDBACK"  # "local" (default), "s3" or "off"
ENV_DIR = "DIGIT_DETECTOR_FEEDBACK_DIR"
ENV_S3_BUCKET = "DIGIT_DETECTOR_S3_BUCKET"
ENV_S3_PREFIX = "DIGIT_DETECTOR_S3_PREFIX"
ENV_S3_ENDPOINT = "DIGIT_DETECTOR_S3_ENDPOINT"
KINDS = ("local", "s3", "off")
PERSISTENT_MOUNT = Path("/data")  # a Hugging Face Space's persistent storage, when enabled


def default_local_dir(persistent: Path = PERSISTENT_MOUNT) -> Path:
    """`/data/feedback` when persistent storage is mounted and writable, else `./feedback`
    (the image creates that folder for its user; the app folder itself is read-only)."""
    if persistent.is_dir() and os.access(persistent, os.W_OK):
        return persistent / "feedback"
    return Path("feedback")


@dataclass(frozen=True)
class FeedbackSettings:
    kind: str = "local"
    local_dir: Path | None = None  # None: default_local_dir()
    s3_bucket: str = ""
    s3_prefix: str = "feedback"
    s3_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FeedbackError(f"feedback store must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FeedbackSettings:
        env = os.environ if env is None else env
        local_dir = env.get(ENV_DIR)
        return cls(
            kind=env.get(ENV_KIND, "local").strip().lower(),
            local_dir=Path(local_dir) if local_dir else None,
            s3_bucket=env.get(ENV_S3_BUCKET, ""),
            s3_prefix=env.get(ENV_S3_PREFIX, "feedback"),
            s3_endpoint=env.get(ENV_S3_ENDPOINT) or None,
        )


def make_store(settings: FeedbackSettings) -> FeedbackStore | None:
    """The configured store, or None when feedback is off."""
    if settings.kind == "off":
        return None
    if settings.kind == "s3":
        from .s3 import S3Store

        return S3Store(settings.s3_bucket, settings.s3_prefix, endpoint_url=settings.s3_endpoint)
    from .local import LocalStore

    return LocalStore(settings.local_dir or default_local_dir())


def store_from_env() -> FeedbackStore | None:
    """The store the environment configures (DIGIT_DETECTOR_FEEDBACK and friends)."""
    return make_store(FeedbackSettings.from_env())
