"""A Stream: the event log of one generation, written by one producer, read by its followers.

Each follower (an HTTP response) replays from its own position, then follows live frames; one
that has caught up parks, and the producer writes new chunks to its client itself (`direct`).
Everything runs on one gevent hub, so a frame append and its wake-up happen without a switch
in between and need no lock. With a journal (the Redis store), frames become visible to
followers only once the journal has made them durable, so no client ever holds an event that
the shared store lacks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

import gevent

from ..errors import ApiError
from ..generation.cancel import StreamCancelled
from ..generation.outcome import Outcome
from ..providers.deltas import Delta, ReplyParts
from .delivery import Delivery, LocalDelivery, Progress
from .direct import ClientWriter
from .following import Followers
from .frames import Frames
from .retention import DEFAULT_RETENTION, Lifetime, Retention
from .tenure import Handover, Tenure
from .wire import NATIVE, Wire


class Journal(Protocol):
    """Makes a stream's written frames durable, then calls `stream.publish` (the Redis store)."""

    def written(self, stream: Stream) -> None: ...

    def continuing(self, stream: Stream) -> bool: ...


class Stream:
    """The event log of one generation and the handle on its producer. Its frames are kept
    compactly (`frames`); followers see them up to `visible` (all written ones, unless a journal
    holds some back)."""

    __slots__ = (
        "_frames",
        "_journal",
        "_wire",
        "cancelled",
        "client",
        "correlation_id",
        "created",
        "delivery",
        "ending",
        "finished",
        "followers",
        "lifetime",
        "model",
        "outcome",
        "producer",
        "retention",
        "stream_id",
        "tenure",
        "visible",
        "writer",
    )

    def __init__(
        self,
        stream_id: str,
        correlation_id: str,
        model: str,
        now: float,
        journal: Journal | None = None,
        wire: Wire = NATIVE,
        client: str = "",
        retention: Retention = DEFAULT_RETENTION,
        created: float | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.correlation_id = correlation_id
        self.model = model
        self.created = time.time() if created is None else created
        self.writer, self._wire = wire.writer(stream_id, correlation_id, model, self.created), wire
        self.client = client
        self.retention = retention
        self.finished = False
        self.lifetime = Lifetime(now)  # consumers, and the clocks the store's sweeps read
        self.producer: gevent.Greenlet | None = None
        self.cancelled = False  # a stop was sent to the producer (it ends the stream shortly)
        self.visible = 0  # frames 0 .. visible - 1 are what followers may see
        self.ending: str | None = None  # once ended: the finish_reason, or the error_code
        self.outcome: Outcome | None = None  # once ended: how (what the API's objects are built from)
        self.tenure = Tenure()  # the Redis store's: revival, epoch, and where followers go once moved
        self.delivery: Delivery = LocalDelivery()  # what reached its clients (the Redis store's: in Redis)
        self._journal = journal
        self.followers = Followers()
        self._frames = Frames()

    @property
    def context(self) -> bytes:
        """What the API that started it stored with it."""
        return self.retention.context

    @property
    def chunks(self) -> int:
        """How many chunk frames the stream holds."""
        return self._frames.chunks

    @property
    def wire_name(self) -> str:
        """The name of the wire its events are written in."""
        return self.writer.name

    @property
    def last_event_id(self) -> int:
        """The id of the newest frame followers may see (-1 while none)."""
        return self.visible - 1

    @property
    def written(self) -> int:
        """How many frames have been written (visible or not yet)."""
        return self._frames.written

    @property
    def ended(self) -> bool:
        """Whether the terminal frame has been written (followers may not see it yet)."""
        return self._frames.tail is not None

    def answered_by(self, model: str) -> None:
        """Name `model` (a fallback that answers) in its events: only before its first frame."""
        if model != self.model and self._frames.head is None:
            self.model = model
            self.writer = self._wire.writer(self.stream_id, self.correlation_id, model, self.created)

    def append(self, frame: bytes, final: bool = False, now: float | None = None) -> None:
        """Add the priming frame (id 0), or with `final` the terminal one, and wake every follower."""
        frames = self._frames
        if frames.head is None:
            frames.head = frame
        elif final and frames.tail is None:
            frames.tail = frame
        else:
            raise ValueError("after the priming frame, only chunks and then one terminal frame")
        self._written(now)

    def append_chunk(self, content: str) -> bytes:
        """Add the next `chunk` frame (its sequence is its event id), wake followers; its bytes."""
        sequence = self._frames.chunks + 1
        frame = self.writer.chunk(sequence, content)
        self._frames.add_text(frame, content.encode("utf-8", "replace"))
        self._stored(sequence, frame)
        return frame

    def append_delta(self, delta: Delta) -> None:
        """Add the next chunk event as a typed delta (reasoning, a refusal, a tool call's piece)."""
        sequence = self._frames.chunks + 1
        frame = self.writer.delta(sequence, delta)
        self._frames.add_delta(frame, *delta.encode())
        self._stored(sequence, frame)

    def append_pieces(self, pieces: list[str | Delta]) -> None:
        """Add a chunk frame for each of several pieces (text or typed deltas); wake followers once."""
        first, frames = self._frames.chunks + 1, self._frames.add_pieces(pieces, self.writer)
        self._stored(first, b"".join(frames), len(frames))

    def _stored(self, first: int, data: bytes, count: int = 1) -> None:
        """Chunk frames `first`.. (`count` of them, `data`) are written: visible, or to the journal."""
        if self._journal is None:  # as `publish` does, for chunks: followers may see them now
            self.visible = first + count
            self.followers.direct.write_soon(first, data, count)
            self.followers.wakeup.notify()
        else:
            self._journal.written(self)

    def _written(self, now: float | None = None) -> None:
        if self._journal is None:
            self.publish(self.written, now)
        else:
            self._journal.written(self)

    def journal_to(self, journal: Journal) -> None:
        """Make its frames durable through `journal` from now on (a stream rebuilt from Redis)."""
        self._journal = journal

    def move(self, handover: Handover) -> None:
        """Another worker took this stream over (this one's lease had lapsed): followers here
        follow it there (`handover`) after the visible frames; nothing more becomes visible."""
        self.tenure.moved = handover
        self._journal = NOWHERE
        self.followers.wake_all()

    def set_notice(self, frame: bytes | None) -> None:
        """Show followers a frame outside the log (to those following now, never replayed); None: no more."""
        self.followers.show(frame)

    def wait(self, timeout: float) -> None:
        """Block until the stream changes (a frame written or published) or `timeout` passes."""
        self.followers.wait(timeout)

    def publish(self, end: int, now: float | None = None) -> None:
        """Let followers see frames up to `end - 1` and wake them (the terminal one ends the stream)."""
        seen, self.visible = self.visible, end
        if self._frames.tail is not None and end == self.written and not self.finished:
            self.finished = True
            self.lifetime.finished_at = time.monotonic() if now is None else now
        self.followers.published(seen, end, self.finished, self.next_write)

    def entries(self, first: int, end: int) -> list[tuple[int, bytes, bytes]]:
        """Frames `first` to `end - 1` as the journal stores them (`Frames.entries`)."""
        return self._frames.entries(first, end)

    def result(self) -> tuple[str, Outcome | None, ReplyParts] | None:
        """The text so far, the typed deltas' parts so far and, once the terminal frame is
        written, how the generation ended (None before the priming frame)."""
        return self._frames.result(self.outcome)

    def frames(self, first: int, end: int) -> list[bytes]:
        """The bytes of frames `first` to `end - 1` (within 0 .. last_event_id)."""
        return self._frames.frames(first, end, self.writer)

    def follow(
        self,
        after_id: int | None,
        keepalive_seconds: float,
        writer: ClientWriter | None = None,
        progress: Progress | None = None,
    ) -> Iterator[bytes]:
        """Yield the frames after `after_id` (all when None), then live ones until the end: those
        piled up since the last yield in one write; with the client's `writer`, a follower that has
        caught up parks and the producer writes the chunks itself (`direct`); a keepalive within
        `keepalive_seconds` of silence. `progress` is told the last frame the client's socket took."""
        return self.followers.follow(self, after_id, keepalive_seconds, writer, progress)

    def next_write(self, cursor: int, end: int) -> bytes:
        """The bytes of frames `cursor` to `end - 1` as one write."""
        return self._frames.next_write(cursor, end, self.writer)

    def catch_up(self, event_id: int) -> None:
        """Nothing to wait for: every event a client got from this worker is here."""

    def attach(self) -> None:
        """Count a consumer in."""
        self.lifetime.attach()

    def detach(self, now: float) -> None:
        """Count a consumer out; the idle clock starts when the last one leaves."""
        self.lifetime.detach(now)

    def continuing(self) -> bool:
        """A continuation of its reply is about to be sent upstream: whether the allowance for them,
        shared by every worker that generates the stream, allows one more (then counted there);
        StreamCancelled once another worker has taken the stream over."""
        return self._journal is None or self._journal.continuing(self)

    def cancel(self, reason: StreamCancelled | None = None) -> bool:
        """Stop the producer if it still runs (with `reason`, default a plain stop); True when
        this call stopped it."""
        producer = self.producer
        if self._frames.tail is not None or self.cancelled or producer is None or producer.dead:
            return False
        self.cancelled = True
        producer.kill(reason or StreamCancelled(), block=False)
        return True


class Nowhere:
    """The journal of a stream another worker took over: what is written here stays unseen."""

    def written(self, stream: Stream) -> None:
        """Nothing: the stream's frames are the new owner's to write."""

    def continuing(self, stream: Stream) -> bool:
        """Never: the reply is the new owner's to continue."""
        raise StreamCancelled("moved", ApiError("generation_lost", "Another worker continues this reply."))


NOWHERE = Nowhere()
