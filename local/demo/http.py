"""The HTTP API, with urllib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from local.demo.base import Json


class ApiError(RuntimeError):
    """A non-2xx answer, with the JSON (or text) the API gave."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


class Api:
    """The routes the demo uses (README, HTTP API)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def call(self, method: str, path: str, body: Json | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, _json_or_text(response.read())
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, _json_or_text(exc.read())) from None

    def start(self, blueprint_id: str, context: Json) -> Json:
        _, body = self.call("POST", "/runs", {"blueprintId": blueprint_id, "context": context})
        return dict(body)

    def get(self, run_id: str) -> Json:
        _, body = self.call("GET", f"/runs/{run_id}")
        return dict(body)

    def resume(self, run_id: str, body: Json) -> int:
        status, _ = self.call("POST", f"/runs/{run_id}/resume", body)
        return status


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")
