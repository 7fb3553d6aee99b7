"""Fixtures for pure unit tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def deadline() -> Iterator[None]:
    """Interrupt a runaway regex match after 3 s (Python's ``re`` checks signals), so code that
    backtracks exponentially fails its test instead of hanging the suite."""
    def expired(*_: object) -> None:
        raise TimeoutError("did not finish within 3 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, 3.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
