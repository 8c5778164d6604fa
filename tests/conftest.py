"""Shared fixtures: one moto server per test session, state wiped between tests.

Tests that touch AWS take the ``aws`` fixture. The code under test reaches the emulator through
boto3's own ``AWS_ENDPOINT_URL``; nothing is patched.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator

import pytest

from local.emulator import Emulator

logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    server = Emulator.start()
    saved = {k: os.environ.get(k) for k in server.environment()}
    os.environ.update(server.environment())
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture
def aws(emulator: Emulator) -> Iterator[Emulator]:
    """A clean emulator: every table and queue from earlier tests is gone."""
    request = urllib.request.Request(f"{emulator.endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    yield emulator
