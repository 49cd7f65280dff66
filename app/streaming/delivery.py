"""What reached a stream's clients, for its ledger: the chunks written to a client's connection
(delivered: the furthest any consumer got) and those a resume sent again that a consumer had
been written before (replayed), counted once per consumer session, when it ends. A stream's
frames are numbered as its events: 0 the priming event, then one per chunk (a token each), then
the terminal one. In this worker's memory (`LocalDelivery`), or in Redis for every worker."""

from __future__ import annotations

from typing import Protocol

WHOLE = -1  # the `after` of a reply handed out as one object: its chunks from the first, none a replay


class Progress:
    """How far one consumer session got: the frame it started after (-1: from the start), the
    last frame handed to its client's connection (-1: none), and the terminal frame's id where
    the stream followed is not the one that knows it (a stream in Redis, one another worker took
    over: set by the `follow` that read it)."""

    __slots__ = ("after", "terminal", "upto")

    def __init__(self, after: int | None) -> None:
        self.after = -1 if after is None else after
        self.upto = -1
        self.terminal: int | None = None

    def parked(self, cursor: int) -> int:
        """A parked follower woke at `cursor`: the producer wrote its client the frames before."""
        self.upto = cursor - 1
        return cursor


class Delivery(Protocol):
    """Where a stream's delivery is counted."""

    def session(self, after: int, upto: int) -> tuple[int, int, int, int]:
        """A consumer was written chunks `after + 1` to `upto` (none when `upto <= after`): the
        chunks delivered for the first time and those sent again (already delivered before);
        then the stream's totals: chunks delivered, chunks sent again."""
        ...


class LocalDelivery:
    """A stream's delivery in this worker's memory (the memory store)."""

    __slots__ = ("delivered", "replayed")

    def __init__(self) -> None:
        self.delivered = 0  # the furthest chunk any consumer was written
        self.replayed = 0

    def session(self, after: int, upto: int) -> tuple[int, int, int, int]:
        new, again = counted(self.delivered, after, upto)
        self.delivered = max(self.delivered, upto)
        self.replayed += again
        return new, again, self.delivered, self.replayed


def counted(delivered: int, after: int, upto: int) -> tuple[int, int]:
    """The chunks new and sent again of a session that wrote `after + 1` to `upto`, when
    `delivered` were delivered before (`after` WHOLE: an object, nothing counted again)."""
    if upto <= after:
        return 0, 0
    return max(0, upto - delivered), 0 if after == WHOLE else max(0, min(delivered, upto) - after)


def chunks_of(progress: Progress, last_event_id: int, finished: bool) -> tuple[int, int] | None:
    """A session's frames as chunks: (after, upto), or None when it wrote none."""
    upto = progress.upto
    if finished and upto >= last_event_id:
        upto = last_event_id - 1  # the terminal frame is no chunk
    after = max(0, progress.after)
    return (after, upto) if upto > after else None
