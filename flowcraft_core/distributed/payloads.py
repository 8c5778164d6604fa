"""Values of any size in a run: inline in an item, compressed in an item, or in a payload bucket.

Every stored value goes through ``ValueCodec``'s envelope: ``{"v": value}`` as it is,
``{"z": bytes}`` zlib-compressed JSON, or ``{"s": key, "n": bytes}`` an object in the bucket,
named by the run and a hash of its content. Why: docs/design.md, section 3, "Values".
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..environment import FLOWCRAFT_MAX_VALUE_MB
from ..errors import FlowcraftError

#: JSON shorter than this is stored as it is.
DEFAULT_INLINE_BYTES = 1024
#: Compressed JSON up to this size stays in the item; larger goes to the payload bucket.
DEFAULT_ITEM_BYTES = 64 * 1024
#: Without a memory setting to follow, the largest value a run stores (JSON text).
DEFAULT_MAX_VALUE_BYTES = 32 * 1024 * 1024
#: The worker holds a value's JSON, its compressed form and the parsed objects at once: values
#: may use up to this fraction of the function's memory.
MEMORY_FRACTION = 8


class PayloadStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...


class ValueTooLarge(FlowcraftError, ValueError):
    """A value over the configured limit; nothing was written."""


class PayloadsUnavailable(FlowcraftError, ValueError):
    """A value needs the payload bucket and none is configured."""


@dataclass
class InMemoryPayloadStore:
    objects: dict[str, bytes] = field(default_factory=dict)
    puts: int = 0
    gets: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self.puts += 1
            self.objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        with self._lock:
            self.gets += 1
            return self.objects[key]


def max_value_bytes_from_environ(environ: Mapping[str, str] | None = None) -> int:
    """``FLOWCRAFT_MAX_VALUE_MB`` if set, else 1/8 of the Lambda function's memory, else 32 MB."""
    env = os.environ if environ is None else environ
    if env.get(FLOWCRAFT_MAX_VALUE_MB):
        return int(float(env[FLOWCRAFT_MAX_VALUE_MB]) * 1024 * 1024)
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory:
        return int(memory) * 1024 * 1024 // MEMORY_FRACTION
    return DEFAULT_MAX_VALUE_BYTES


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


@dataclass
class ValueCodec:
    payloads: PayloadStore | None = None
    inline_bytes: int = DEFAULT_INLINE_BYTES
    item_bytes: int = DEFAULT_ITEM_BYTES
    max_bytes: int = DEFAULT_MAX_VALUE_BYTES
    key_prefix: str = "runs/"

    def encode(self, value: Any, *, run_id: str, name: str, where: str) -> dict[str, Any]:
        """The envelope for ``value``; ``where`` names it in errors (e.g. "node 'x': output")."""
        if value is None or isinstance(value, bool | int | float):
            return {"v": value}
        if isinstance(value, str) and len(value) <= self.inline_bytes // 4:
            return {"v": value}
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{where} is not JSON-serialisable: {exc}") from None
        if len(text) <= self.inline_bytes:
            return {"v": value}
        if len(text) > self.max_bytes:
            raise ValueTooLarge(
                f"{where} is {_megabytes(len(text))} of JSON; values up to "
                f"{_megabytes(self.max_bytes)} are stored (FLOWCRAFT_MAX_VALUE_MB; by default "
                "1/8 of the worker's memory)"
            )
        packed = zlib.compress(text, 6)
        if len(packed) <= self.item_bytes:
            return {"z": packed}
        if self.payloads is None:
            raise PayloadsUnavailable(
                f"{where} is {_megabytes(len(packed))} compressed, over the "
                f"{_megabytes(self.item_bytes)} an item holds, and no payload bucket is "
                "configured (FLOWCRAFT_PAYLOAD_BUCKET)"
            )
        digest = hashlib.sha256(packed).hexdigest()[:24]
        safe = name.replace("/", "_")
        key = f"{self.key_prefix}{run_id}/{safe}-{digest}.json.z"
        self.payloads.put(key, packed)
        return {"s": key, "n": len(text)}

    def decode(self, envelope: Any) -> Any:
        if not isinstance(envelope, Mapping):
            return envelope
        if "v" in envelope:
            return envelope["v"]
        if "z" in envelope:
            return json.loads(zlib.decompress(bytes(envelope["z"])))
        if "s" in envelope:
            if self.payloads is None:
                raise PayloadsUnavailable(
                    f"value {envelope['s']!r} is in the payload bucket, and none is configured"
                )
            return json.loads(zlib.decompress(self.payloads.get(str(envelope["s"]))))
        return None

    @staticmethod
    def stored_size(envelope: Any) -> int:
        """The size of a value as stored in its item (for summaries and limits)."""
        if not isinstance(envelope, Mapping):
            return 0
        if "z" in envelope:
            return len(envelope["z"])
        if "s" in envelope:
            return int(envelope.get("n", 0))
        return len(json.dumps(envelope.get("v"), default=str))

    @staticmethod
    def is_reference(envelope: Any) -> bool:
        return isinstance(envelope, Mapping) and "s" in envelope
