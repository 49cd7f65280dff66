"""The benchmark's stream starts: steady starts keep N streams open and their tokens apart; a cell
that does not count says why."""

from __future__ import annotations

import pytest

from load.schedule import start_offsets

PERIOD = 0.020


def _phases(offsets: list[float]) -> list[float]:
    """Where in the token period each stream's tokens fall (the fake clocks tokens from the start)."""
    return sorted(round(offset % PERIOD, 9) % PERIOD for offset in offsets)


def test_aligned_starts_put_every_streams_tokens_at_one_instant() -> None:
    """The pattern the steady starts avoid: a start every 40 ms, tokens every 20 ms."""
    offsets = start_offsets("aligned", 100, 4.0, PERIOD)
    assert offsets[:3] == pytest.approx([0.0, 0.04, 0.08])
    assert set(_phases(offsets)) == {0.0}


@pytest.mark.parametrize("concurrency", [10, 100, 1000])
def test_steady_starts_spread_the_streams_tokens_over_the_period(concurrency: int) -> None:
    offsets = start_offsets("steady", concurrency, 4.0, PERIOD)
    phases = _phases(offsets)
    widest_gap = max(b - a for a, b in zip(phases, [*phases[1:], phases[0] + PERIOD], strict=True))
    assert widest_gap < 3 * PERIOD / concurrency, "no part of the period is left without tokens"
    assert max(offsets) < 4.0 + PERIOD, "the streams still start within one reply's length"


def test_steady_starts_keep_their_even_spacing_within_one_token_period() -> None:
    offsets = start_offsets("steady", 100, 4.0, PERIOD)
    for index, offset in enumerate(offsets):
        assert 0.04 * index <= offset < 0.04 * index + PERIOD


def test_burst_starts_are_all_at_once() -> None:
    assert start_offsets("burst", 5, 4.0, PERIOD) == [0.0] * 5


def test_an_invalid_cell_says_why() -> None:
    from load.bench_report import invalid_reason, markdown

    why = invalid_reason(23.4, 20)
    assert "23.40 ms" in why and "20 ms apart" in why and "machine" in why
    cell = {"concurrency": 100, "tokens": 200, "delay_ms": 20.0, "servers": {}, "valid": False, "invalid_reason": why}
    assert f"Not valid, 100 streams: {why}." in markdown({"cells": [cell]})
