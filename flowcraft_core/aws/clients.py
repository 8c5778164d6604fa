"""boto3 clients, created once per process and reused (Lambda containers keep them warm).

Endpoints come from boto3's own ``AWS_ENDPOINT_URL`` (the local emulator sets it); no code
here passes endpoint URLs around.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=3, read_timeout=10
)


@functools.cache
def dynamodb_client() -> Any:
    return boto3.client("dynamodb", config=_CONFIG)


@functools.cache
def sqs_client() -> Any:
    return boto3.client("sqs", config=_CONFIG)


@functools.cache
def s3_client() -> Any:
    return boto3.client("s3", config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests that change AWS_ENDPOINT_URL call this)."""
    dynamodb_client.cache_clear()
    sqs_client.cache_clear()
    s3_client.cache_clear()
