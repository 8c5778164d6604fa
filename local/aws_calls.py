"""Count AWS requests by service and operation, to report "AWS requests per run", through
botocore's ``before-send`` event (nothing is patched). Where it hooks and what it misses:
docs/local.md, "Counting AWS requests".
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3

_UNIQUE_ID_PREFIX = "flowcraft-local-aws-call-counter"


class AwsCallCounter:
    """Thread-safe tally of AWS requests, keyed by ``(service, operation)``."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._unique_id = f"{_UNIQUE_ID_PREFIX}-{id(self)}"

    def install(self, session: boto3.Session | None = None) -> AwsCallCounter:
        """Start counting requests from clients created from now on (default session if None)."""
        if self._session is not None:
            raise RuntimeError("counter already installed")
        if session is None:
            if boto3.DEFAULT_SESSION is None:
                boto3.setup_default_session()
            session = boto3.DEFAULT_SESSION
        assert session is not None
        session.events.register("before-send", self._on_send, unique_id=self._unique_id)
        self._session = session
        return self

    def uninstall(self) -> None:
        """Stop counting (for clients created after this; existing ones keep their copy)."""
        if self._session is not None:
            self._session.events.unregister("before-send", unique_id=self._unique_id)
            self._session = None

    def __enter__(self) -> AwsCallCounter:
        return self if self._session is not None else self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _on_send(self, event_name: str = "", **kwargs: Any) -> None:
        # event_name is "before-send.<service-id>.<Operation>"; returning None lets it proceed.
        parts = event_name.split(".")
        service = parts[1] if len(parts) > 1 else "?"
        operation = parts[2] if len(parts) > 2 else "?"
        key = self._key(service, operation)
        with self._lock:
            self._counts[key] += 1

    def _key(self, service: str, operation: str) -> tuple[str, str]:
        """What a request is counted under (a subclass may count by something else)."""
        return service, operation

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> Counter[tuple[str, str]]:
        """A copy of the counts; subtract an earlier snapshot to get one run's requests."""
        with self._lock:
            return Counter(self._counts)

    def since(self, earlier: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
        """Requests made after ``earlier`` was taken."""
        return self.snapshot() - earlier

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def by_service(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (service, _), count in self.snapshot().items():
            totals[service] += count
        return dict(totals.most_common())

    def by_operation(self) -> dict[str, int]:
        """``{"sqs.ReceiveMessage": 12, ...}``, most frequent first."""
        return {f"{s}.{o}": n for (s, o), n in self.snapshot().most_common()}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def summary(self, counts: Counter[tuple[str, str]] | None = None) -> str:
        """One line per operation, for printing: ``  sqs.ReceiveMessage  12``."""
        counts = self.snapshot() if counts is None else counts
        if not counts:
            return "  (no AWS requests)"
        width = max(len(f"{s}.{o}") for s, o in counts)
        lines = [f"  {f'{s}.{o}':<{width}}  {n:>5}" for (s, o), n in counts.most_common()]
        lines.append(f"  {'total':<{width}}  {sum(counts.values()):>5}")
        return "\n".join(lines)
