"""Helpers for testing workflows: a fake clock that records sleeps instead of waiting."""

from __future__ import annotations

import asyncio


class FakeClock:
    """``sleep`` advances virtual time and yields once; nothing really waits."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.current = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.current += seconds
