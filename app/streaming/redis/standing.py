"""What this worker owes Redis, stream by stream: admissions to ask for, frames to write (from
which one), frames sent and not yet confirmed, endings to release from the live count.

The journal's writer takes its batches from here and books Redis's answers here; the standing
itself does no I/O and wakes nobody.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..stream import Stream
from .batch import Call


class Standing:
    """Each stream's standing with Redis (everything keyed by stream id)."""

    def __init__(self) -> None:
        self.admitting: dict[str, Stream] = {}  # new streams whose admission is not confirmed yet
        self.dirty: dict[str, Stream] = {}  # streams with frames to write
        self._held: dict[str, Stream] = {}  # new streams with frames, written once admitted
        self.release: dict[str, Stream] = {}  # ended streams still counted among the live ones
        self._readmit: set[str] = set()  # live streams Redis lost: counted again, whatever the count
        self._creating: set[str] = set()  # streams whose next write creates their hash
        self._durable: dict[str, int] = {}  # frames in Redis, per stream with frames still to write
        self._sent: dict[str, int] = {}  # frames sent, per stream with a call in flight
        self._forgotten: set[str] = set()
        self._paused_until: dict[str, float] = {}  # streams whose Cluster node fails: not sent before then
        self._failing: dict[str, float] = {}  # since when each of those has failed
        self.cut: set[str] = set()  # streams ended as their node failed too long: shown without Redis

    def create(self, stream: Stream) -> None:
        """A new stream: admitted first (MAX_STREAMS), then written from its first frame."""
        self.admitting[stream.stream_id] = stream
        self._creating.add(stream.stream_id)

    def rewrite(self, stream: Stream) -> bool:
        """Redis lost `stream`: write it again from its first frame (counted again if live).
        False when there is nothing to write again (deleted, or not admitted yet)."""
        sid = stream.stream_id
        if sid in self._forgotten or sid in self.admitting:
            return False
        self._durable[sid] = 0
        self._sent.pop(sid, None)
        self._creating.add(sid)
        if not stream.finished:
            self._readmit.add(sid)
        self.dirty[sid] = stream
        return True

    def adopt(self, stream: Stream) -> None:
        """A stream taken over from a dead worker: Redis holds its frames so far."""
        sid = stream.stream_id
        self._forgotten.discard(sid)
        self._durable[sid] = stream.written

    def forget(self, stream: Stream) -> None:
        """Owe nothing more for `stream` (deleted, or ended by another worker)."""
        sid = stream.stream_id
        self._forgotten.add(sid)
        for pending in (self.dirty, self._held, self.admitting, self._durable, self._sent, self.release):
            pending.pop(sid, None)
        self._creating.discard(sid)
        self._readmit.discard(sid)
        self._answered(sid)
        self.cut.discard(sid)

    def durable(self, stream: Stream) -> bool:
        """Whether Redis has confirmed every frame written to `stream`."""
        sid = stream.stream_id
        confirmed = self._durable.get(sid, stream.written)  # absent once the ending is confirmed
        pending = sid in self.dirty or sid in self._sent or sid in self.admitting
        return not pending and confirmed >= stream.written

    def idle(self) -> bool:
        """Whether nothing is owed (written or awaiting confirmation)."""
        return not (self.dirty or self._durable or self._sent or self.admitting or self.release)

    def has_work(self) -> bool:
        """Whether a batch has something to send (not a new stream's frames, held until it is
        admitted: the writer would take them again and again until then)."""
        if self.dirty or self.release:
            return True
        return bool(self.admitting) and any(sid not in self._sent for sid in self.admitting)

    def take(self, now: float = 0.0) -> list[Call]:
        """The next batch: admissions not asked yet, releases, each admitted dirty stream's new
        frames; of the streams whose node fails, only those due again at `now`."""
        paused = {sid for sid, until in self._paused_until.items() if until > now}
        calls: list[Call] = [
            ("admit", s, 0, 0) for sid, s in self.admitting.items() if sid not in self._sent and sid not in paused
        ]
        calls += [("release", stream, 0, 0) for sid, stream in self.release.items() if sid not in paused]
        self.release = {sid: stream for sid, stream in self.release.items() if sid in paused}
        waiting = {}
        for sid, stream in self.dirty.items():
            first = self._sent.get(sid, self._durable.get(sid, 0))
            if sid in paused:
                waiting[sid] = stream
            elif sid in self.admitting:
                self._held[sid] = stream
            elif stream.written > first or (first == 0 and sid in self._creating):
                calls.append(("write", stream, first, stream.written))
        self.dirty = waiting
        return calls

    def node_failing(self, call: Call, retry_at: float, now: float, grace: float) -> bool:
        """A call whose Cluster node fails: its stream paused until `retry_at`, then sent again;
        True when this write's stream has failed for `grace` and is cut now (shown without Redis)."""
        sid = call[1].stream_id
        self.requeue([call])
        self._paused_until[sid] = retry_at
        failed_for = now - self._failing.setdefault(sid, now)
        if call[0] != "write" or failed_for < grace or sid in self.cut:
            return False
        self.cut.add(sid)
        return True

    def next_due(self, now: float) -> float | None:
        """When the first stream paused for its failing node may go again after `now` (None: none)."""
        return min((until for until in self._paused_until.values() if until > now), default=None)

    def _answered(self, sid: str) -> None:
        """Its node answered: not paused any more."""
        self._paused_until.pop(sid, None)
        self._failing.pop(sid, None)

    def flags(self, call: Call) -> tuple[bool, bool]:
        """Whether a call creates its stream's hash, and counts it again among the live ones."""
        sid = call[1].stream_id
        creating = call[2] == 0 and sid in self._creating
        return creating, call[0] == "write" and creating and sid in self._readmit

    def sending(self, calls: Iterable[Call]) -> None:
        """These calls are on their way."""
        for kind, stream, _, end in calls:
            if kind != "release":
                self._sent[stream.stream_id] = end if kind == "write" else -1

    def requeue(self, calls: Iterable[Call]) -> None:
        """Send these again with the next batch, from each stream's first frame not in Redis."""
        for kind, stream, _, _ in calls:
            if kind == "probe":
                continue
            sid = stream.stream_id
            if sid in self._forgotten:
                continue
            if kind == "release":
                self.release[sid] = stream
            elif kind == "write" or sid in self.admitting:  # a recount that failed: the owner's sweep counts it
                self._sent.pop(sid, None)
                if kind == "write":
                    self.dirty.setdefault(sid, stream)

    def admitted(self, stream: Stream, admitted: bool) -> bool | None:
        """Book an admission's answer: whether the new stream was admitted (None: a live stream
        counted again, nothing to do)."""
        sid = stream.stream_id
        self._answered(sid)
        if self.admitting.pop(sid, None) is None:
            self._readmit.discard(sid)
            return None
        self._sent.pop(sid, None)
        self._held.pop(sid, None)
        if not admitted:  # the cluster holds MAX_STREAMS live streams
            self._creating.discard(sid)
            self.dirty.pop(sid, None)
        else:  # its frames, or its hash alone while its priming waits for the answering model
            self.dirty[sid] = stream
        return admitted

    def booked(self, call: Call, result: Any) -> str:
        """Book Redis's answer to one write: `ok`; `again` (Redis holds less than was sent: go
        again from what it holds); `missing` (the stream's hash is gone); `ended` (another
        worker ended it); `ignored` (a stream deleted since)."""
        _, stream, _, end = call
        sid = stream.stream_id
        status, held = bytes(result[0]).decode(), int(result[1])
        self._answered(sid)
        if self._sent.get(sid) == end:
            del self._sent[sid]
        if sid in self._forgotten:
            return "ignored"
        if status == "gap":
            self._durable[sid] = min(held, self._durable.get(sid, held))
            return "again"
        if status != "ok":
            return status
        self._creating.discard(sid)
        if stream.ended and held >= stream.written:
            self._durable.pop(sid, None)
        elif held > self._durable.get(sid, 0):
            self._durable[sid] = held
        return "ok"
