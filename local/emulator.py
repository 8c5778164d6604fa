"""The embedded AWS emulator: moto in server mode on 127.0.0.1.

Code reaches it through boto3's own ``AWS_ENDPOINT_URL``; when that variable already points at an
emulator (or a real endpoint), we reuse it instead of starting our own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class Emulator:
    """A running emulator (ours, or one found through ``AWS_ENDPOINT_URL``)."""

    endpoint: str
    _server: Any = field(default=None, repr=False)

    @classmethod
    def start(cls, port: int = 0) -> Emulator:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        host, bound_port = server.get_host_and_port()
        return cls(endpoint=f"http://{host}:{bound_port}", _server=server)

    @classmethod
    def from_environment_or_start(cls, port: int = 0) -> Emulator:
        existing = os.environ.get("AWS_ENDPOINT_URL")
        if existing:
            return cls(endpoint=existing)
        return cls.start(port)

    @property
    def owned(self) -> bool:
        return self._server is not None

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 at this emulator (dummy credentials when we own it)."""
        env = {"AWS_ENDPOINT_URL": self.endpoint}
        if self.owned:
            env.update(DUMMY_CREDENTIALS)
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if region:  # keep the user's region: another shell will use it too
                env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
        return env

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
