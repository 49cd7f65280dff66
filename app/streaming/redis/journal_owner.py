"""The Redis store's side of its journal (`journal.Owner`): what it does when Redis has been away
past the outage grace, did not admit a new stream, or gave a stream of this worker to another;
when writes begin to fail or Redis lost its scripts; and whether one more continuation fits."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

import redis

from ...errors import ApiError
from ...generation.cancel import StreamCancelled
from ..delivery import Progress
from ..stream import Stream
from ..view import StreamView
from . import link as keys
from .link import Link


class Owner:
    """What the journal needs to know of the store it writes for, and tells it."""

    worker_id: str
    max_streams: int
    outage_seconds: float

    def outage(self) -> None:
        """Redis has been failing for the outage grace: end the live streams."""

    def refused(self, stream: Stream) -> None:
        """Redis did not admit `stream`: the cluster holds MAX_STREAMS live streams."""

    def cut(self, stream: Stream) -> None:
        """The Cluster node holding `stream` has failed for the outage grace: end it alone."""

    def moved(self, stream: Stream) -> None:
        """Another worker took `stream` over or ended it (this worker's lease had lapsed): stop
        generating it; its followers here follow it from Redis."""

    def continuing(self, stream: Stream) -> bool:
        """A continuation of `stream` is about to be sent upstream: whether its shared allowance allows it."""
        return True

    def failing(self) -> None:
        """Writes began to fail: say so in the lease (this worker's clients may be ahead of Redis)."""

    def trusted(self) -> bool:
        """Whether its lease surely held lately (frames are shown as they are sent, else once taken)."""
        return True


class Forgets(Protocol):
    """The store's journal, as its owner uses it."""

    def forget(self, stream: Stream) -> None: ...


class Duties(Protocol):
    """The store's lease (`owner.OwnerDuties`), as the journal's owner uses it."""

    def trusted(self) -> bool: ...

    def renew(self, lost: bool = False) -> None: ...

    def check_soon(self) -> None: ...


class Store(Protocol):
    """What the journal's owner reads of the Redis store (`RedisStreamStore`)."""

    worker_id: str
    max_streams: int
    outage_seconds: float
    link: Link
    journal: Forgets
    duties: Duties

    def get(self, stream_id: str) -> StreamView: ...


log = logging.getLogger("chatwait.store")


class JournalOwner(Owner):
    """What the journal tells the store it writes for, and asks of it."""

    def __init__(self, store: Store, local: dict[str, Stream], refused: set[str], rescues: int) -> None:
        self._store = store
        self._local = local  # the store's own streams
        self._refused = refused  # new streams Redis did not admit (the store's `admit` answers for them)
        self._rescues = rescues  # continuations of a stream after an upstream cut it (UPSTREAM_RESCUES)
        self._noting_loss = False

    @property
    def worker_id(self) -> str:
        return self._store.worker_id

    @property
    def max_streams(self) -> int:
        return self._store.max_streams

    @property
    def outage_seconds(self) -> float:
        return self._store.outage_seconds

    def outage(self) -> None:
        """Redis has failed for REDIS_OUTAGE_SECONDS: end this worker's live streams."""
        detail = f"Redis did not take this reply's events for {self._store.outage_seconds:g} s."
        error = ApiError("store_unavailable", detail)
        for stream in list(self._local.values()):
            stream.cancel(StreamCancelled("store_unavailable", error))

    def cut(self, stream: Stream) -> None:
        """The Cluster node holding `stream` has not taken its events for REDIS_OUTAGE_SECONDS:
        end it with store_unavailable (the streams on other nodes go on)."""
        detail = (
            f"The Redis Cluster node holding this reply did not take its events for {self._store.outage_seconds:g} s."
        )
        stream.cancel(StreamCancelled("store_unavailable", ApiError("store_unavailable", detail)))
        log.warning("stream_cut", extra={"stream_id": stream.stream_id, "last_event_id": stream.last_event_id})

    def refused(self, stream: Stream) -> None:
        """Redis did not admit the new stream: the cluster holds MAX_STREAMS (`admit` answers
        server_busy). Stop generating."""
        self._refused.add(stream.stream_id)
        error = ApiError("server_busy", f"The cluster holds {self._store.max_streams} live streams (MAX_STREAMS).")
        stream.cancel(StreamCancelled("refused", error))

    def moved(self, stream: Stream) -> None:
        """Another worker took `stream` over, or ended it as lost (this worker's lease had
        lapsed): stop generating it here; its followers here follow it on from Redis, where the
        new owner writes it (every frame they have seen is there: shown only once Redis took it,
        or while the lease surely held)."""
        if self._local.get(stream.stream_id) is stream:
            del self._local[stream.stream_id]
        self._store.journal.forget(stream)
        stream.move(lambda after_id, keepalive, progress: self._handed_over(stream, after_id, keepalive, progress))
        detail = "This worker lost its lease on the reply: another worker continues it."
        stream.cancel(StreamCancelled("moved", ApiError("generation_lost", detail)))
        log.warning("stream_moved", extra={"stream_id": stream.stream_id, "last_event_id": stream.last_event_id})

    def _handed_over(
        self, stream: Stream, after_id: int, keepalive_seconds: float, progress: Progress
    ) -> Iterator[bytes]:
        """The frames after `after_id` of a stream this worker lost, as Redis has them; when
        Redis cannot be read, an id-less ending that says to resume."""
        try:
            view = self._store.get(stream.stream_id)  # Redis's, or this worker's again if it took it back
        except ApiError as error:
            action = f"Resume after event {after_id}: the reply goes on where it left off."
            yield stream.writer.interrupted(after_id, ApiError(error.error_code, error.detail, action=action))
            return
        yield from view.follow(after_id, keepalive_seconds, None, progress)

    def trusted(self) -> bool:
        return self._store.duties.trusted()

    def continuing(self, stream: Stream) -> bool:
        """Whether one more continuation of `stream` after a cut fits UPSTREAM_RESCUES, counted in
        its hash (whichever worker makes it; takeovers have an allowance of their own); StreamCancelled
        when another worker owns it now. Redis out of reach: this worker's own count decides."""
        args = [self._store.worker_id, stream.tenure.epoch, self._rescues]
        try:
            link = self._store.link
            status = link.scripts.run(link.commands, "continue", [keys.meta_key(stream.stream_id)], args)
        except redis.RedisError:
            return True
        if status == b"taken":
            detail = "This worker lost its lease on the reply: another worker continues it."
            raise StreamCancelled("moved", ApiError("generation_lost", detail))
        return status != b"spent"

    def failing(self) -> None:
        """Writes began to fail: the lease says so at once (resumes elsewhere then wait for events
        this worker's clients have and Redis has not)."""
        with contextlib.suppress(redis.RedisError):
            self._store.duties.renew()

    def keys_lost(self) -> None:
        """Redis lost its scripts (a restart, a failover): record it, and check at once what
        else it lost (this worker's streams are written again)."""
        self._store.duties.check_soon()
        if not self._noting_loss:  # the renewal itself may find the scripts gone again
            self._noting_loss = True
            try:
                with contextlib.suppress(redis.RedisError):
                    self._store.duties.renew(lost=True)
            finally:
                self._noting_loss = False
