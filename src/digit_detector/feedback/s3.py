"""S3-compatible feedback store (AWS S3, MinIO, ...): bucket, prefix and endpoint come from
FeedbackSettings (the environment: DIGIT_DETECTOR_S3_BUCKET, DIGIT_DETECTOR_S3_PREFIX,
DIGIT_DETECTOR_S3_ENDPOINT), credentials from boto3's usual AWS_* variables. Nothing is
hard-coded. The durable choice for a Space, whose disk is ephemeral.

Each item is three objects under the prefix: images/<id>.png, labels/<id>.txt and
items/<id>.json; the index object is written last, so a listing of items/ only ever shows
complete items (a failed upload deletes what it wrote)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from .item import MAX_ITEM_BYTES, FeedbackError, FeedbackItem, check_item_id, parse_item, validate_item


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

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, kind: str, item_id: str, ext: str) -> str:
        return f"{self.prefix}/{kind}/{check_item_id(item_id)}.{ext}"

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
        except Exception as exc:  # boto's errors are not OSError; any failure rolls back
            for key in written:
                with contextlib.suppress(Exception):
                    self.client.delete_object(Bucket=self.bucket, Key=key)
            raise FeedbackError(f"could not store the drawing in {self.describe()}: {exc}") from exc
        return item.item_id

    def ids(self) -> list[str]:
        out = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/items/"):
                for obj in page.get("Contents", []):
                    out.append(obj["Key"].rsplit("/", 1)[1].removesuffix(".json"))
        except Exception as exc:  # boto's errors are not OSError
            raise FeedbackError(f"could not list {self.describe()}: {exc}") from exc
        return sorted(out)

    def _read(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except Exception as exc:  # boto's errors are not OSError
            raise FeedbackError(f"could not read {key} from {self.describe()}: {exc}") from exc

    def get(self, item_id: str) -> FeedbackItem:
        meta = json.loads(self._read(self._key("items", item_id, "json")))
        return parse_item(
            item_id,
            self._read(self._key("images", item_id, "png")),
            self._read(self._key("labels", item_id, "txt")).decode(),
            day=meta.get("day", ""),
            kind=meta.get("kind", "confirmed"),
        )
