"""S3PayloadStore: values too large for an item, as objects in the payload bucket.

The S3 client is made on first use: most runs never hold a value that large, and a Lambda cold
start should not pay for a client it does not need.
"""

from __future__ import annotations

from typing import Any

from .clients import s3_client


class S3PayloadStore:
    def __init__(self, bucket: str, *, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream"
        )

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body
