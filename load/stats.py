"""Percentiles as the load tools report them."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float | None:
    """The value at percentile `q` (nearest rank), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(value: float | None) -> float | None:
    """Seconds as milliseconds, rounded to 10 µs."""
    return None if value is None else round(value * 1000, 2)
