"""When the benchmark's streams start (no imports with side effects, so tests can import it)."""

from __future__ import annotations

GOLDEN_FRACTION = 0.6180339887498949


def start_offsets(starts: str, concurrency: int, spread: float, token_period: float) -> list[float]:
    """When each of a cell's streams starts, in seconds after the first.

    steady: evenly over `spread` (one reply's length, so N streams are open at once), each also
    shifted by its own fraction of one token period, so that the streams' tokens fall at
    different instants, as those of independent users do. The fractions follow the golden-ratio
    sequence, which covers the period evenly for any N.
    aligned: evenly over `spread`, without the shift. When spread / N is a whole number of token
    periods (100 streams of 200 tokens at 20 ms: a start every 40 ms), every stream's tokens
    fall at the same instant: N tokens at once, every period.
    burst: all at once (the worst case for time to first token).
    """
    if starts == "burst":
        return [0.0] * concurrency
    shift = 0.0 if starts == "aligned" else token_period
    return [spread * index / concurrency + shift * (index * GOLDEN_FRACTION % 1.0) for index in range(concurrency)]
