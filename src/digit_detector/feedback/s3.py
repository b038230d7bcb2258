"""S3-compatible feedback store (AWS S3, MinIO, ...), configured from the environment:

DIGIT_DETECTOR_S3_BUCKET (required), DIGIT_DETECTOR_S3_PREFIX (default "feedback"),
DIGIT_DETECTOR_S3_ENDPOINT (for non-AWS services), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_DEFAULT_REGION (boto3's usual variables). Nothing is hard-coded.

Each item is three objects under the prefix: images/<id>.png, labels/<id>.txt and
items/<id>.json; the index object is written last, so a listing of items/ only ever shows
complete items (a failed upload deletes what it wrote)."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from .store import MAX_ITEM_BYTES, FeedbackError, FeedbackItem, parse_item, validate_item


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "feedback",
        client: Any = None,
        endpoint_url: str | None = None,
        max_item_bytes: int = MAX_ITEM_BYTES,
    ) -> None:
        if not bucket:
            raise FeedbackError("an S3 bucket name is required (DIGIT_DETECTOR_S3_BUCKET)")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.max_item_bytes = max_item_bytes

    @classmethod
    def from_env(cls) -> S3Store:
        return cls(
            bucket=os.environ.get("DIGIT_DETECTOR_S3_BUCKET", ""),
            prefix=os.environ.get("DIGIT_DETECTOR_S3_PREFIX", "feedback"),
            endpoint_url=os.environ.get("DIGIT_DETECTOR_S3_ENDPOINT") or None,
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, kind: str, item_id: str, ext: str) -> str:
        return f"{self.prefix}/{kind}/{item_id}.{ext}"

    def add(self, item: FeedbackItem) -> str:
        validate_item(item, self.max_item_bytes)
        written = []
        meta = {
            "id": item.item_id,
            "day": item.day,
            "kind": item.kind,
            "width": item.width,
            "height": item.height,
            "objects": len(item.class_ids),
            "bytes": item.size,
        }
        try:
            for kind, ext, body, mime in (
                ("images", "png", item.png, "image/png"),
                ("labels", "txt", item.label_text().encode(), "text/plain"),
                ("items", "json", json.dumps(meta).encode(), "application/json"),
            ):
                key = self._key(kind, item.item_id, ext)
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=mime)
                written.append(key)
        except Exception:
            for key in written:
                with contextlib.suppress(Exception):
                    self.client.delete_object(Bucket=self.bucket, Key=key)
            raise
        return item.item_id

    def ids(self) -> list[str]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/items/"):
            for obj in page.get("Contents", []):
                out.append(obj["Key"].rsplit("/", 1)[1].removesuffix(".json"))
        return sorted(out)

    def _read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def get(self, item_id: str) -> FeedbackItem:
        meta = json.loads(self._read(self._key("items", item_id, "json")))
        return parse_item(
            item_id,
            self._read(self._key("images", item_id, "png")),
            self._read(self._key("labels", item_id, "txt")).decode(),
            day=meta.get("day", ""),
            kind=meta.get("kind", "confirmed"),
        )
