"""S3PayloadStore: values too large for an item, as objects in the payload bucket."""

from __future__ import annotations

from typing import Any

from .clients import s3_client


class S3PayloadStore:
    def __init__(self, bucket: str, *, client: Any = None) -> None:
        self.bucket = bucket
        self.client = client or s3_client()

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream"
        )

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body
