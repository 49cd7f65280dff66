"""The live streams as an operator sees them (the admin API's list): what each one is, whose it
is and how far it got, newest first and bounded, whichever worker or instance produces it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

MAX_LISTED = 500  # the most an answer lists; the count says how many there are


@dataclasses.dataclass(frozen=True)
class LiveStream:
    """One stream still generating: its id, model, wire, the digest of the key that started it
    ("" for none), when it started (Unix seconds), the events written so far, its worker."""

    stream_id: str
    model: str
    wire: str
    client: str
    created: float
    events: int
    worker: str


def newest(streams: Iterable[LiveStream], limit: int) -> list[LiveStream]:
    """The `limit` newest of `streams` (at most MAX_LISTED), newest first."""
    return sorted(streams, key=lambda stream: stream.created, reverse=True)[: min(limit, MAX_LISTED)]
