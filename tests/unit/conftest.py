"""Fixtures the unit tests share."""

from __future__ import annotations

import gevent
import pytest


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps of the generation, recorded instead of slept."""
    recorded: list[float] = []
    real_sleep = gevent.sleep
    monkeypatch.setattr("gevent.sleep", lambda seconds=0: recorded.append(seconds) or real_sleep(0))
    return recorded
