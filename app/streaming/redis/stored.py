"""The Redis store's bound on stored responses (MAX_STORED_RESPONSES per client key, across the
cluster): each key's finished stored responses are listed in a sorted set of its own, by when
they finished. A worker lists its own once Redis holds their ending (at its sweep, one script
call per key), and deletes those the list pops: the oldest over the bound. Live ones are never
listed, so never evicted; what expires leaves the list with it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..stream import Stream
from . import link as keys
from .link import Link

log = logging.getLogger("chatwait.store")

MAX_PENDING = 10_000  # ended stored responses waiting to be listed (Redis failing meanwhile)


def stored_key(client: str) -> str:
    """A client key's list of finished stored responses (`-`: no client keys)."""
    return f"{keys.PREFIX}:stored:{{{client or '-'}}}"


def member(stream_id: str, owner: str) -> str:
    """A stored response as its key's list names it: its id and the worker that owns its copy."""
    return f"{stream_id}@{owner}"


class StoredResponses:
    """This worker's ended stored responses, listed at each sweep; the evictions that follow."""

    def __init__(self, link: Link, bound: int, forget_local: Callable[[str], None]) -> None:
        self._link = link
        self.bound = bound
        self._forget_local = forget_local
        self._ended: dict[str, Stream] = {}

    def ended(self, stream: Stream) -> None:
        """A stored response of this worker ended: list it once Redis holds its ending."""
        if len(self._ended) >= MAX_PENDING:
            self._ended.pop(next(iter(self._ended)))  # it still expires with its TTL
        self._ended[stream.stream_id] = stream

    def forget(self, stream_id: str) -> None:
        self._ended.pop(stream_id, None)

    def list_durable(self, durable: Callable[[Stream], bool], ttl_seconds: float) -> int:
        """List the ended stored responses Redis holds whole, and delete what that evicts; how
        many were evicted. Raises redis.RedisError (what is not listed waits for the next sweep)."""
        by_client: dict[str, list[Stream]] = {}
        for stream in self._ended.values():
            if durable(stream):
                by_client.setdefault(stream.client, []).append(stream)
        evicted: list[str] = []
        for client, streams in by_client.items():
            evicted += self._list(client, streams, ttl_seconds)
            for stream in streams:
                self._ended.pop(stream.stream_id, None)
        if evicted:
            self._delete(evicted)
        return len(evicted)

    def _list(self, client: str, streams: list[Stream], ttl_seconds: float) -> list[str]:
        kept_ms = int(max(stream.retention.kept_for(ttl_seconds) for stream in streams) * 1000)
        now = time.time()
        args: list[object] = [self.bound, kept_ms, int(now * 1000)]
        for stream in streams:
            finished = now - max(0.0, time.monotonic() - stream.lifetime.finished_at)
            args += [member(stream.stream_id, self._link.worker), int(finished * 1000)]
        found = self._link.scripts.run(self._link.commands, "stored", [stored_key(client)], args)
        return [entry.decode() for entry in found]

    def _delete(self, evicted: list[str]) -> None:
        """Delete evicted responses' keys; their owners drop their copies (told on their channel)."""
        pipe = self._link.commands.pipeline(transaction=False)
        owners: dict[str, list[str]] = {}
        for entry in evicted:
            stream_id, _, owner = entry.rpartition("@")
            pipe.delete(*keys.stream_keys(stream_id))
            owners.setdefault(owner, []).append(stream_id)
        pipe.execute()
        for owner, stream_ids in owners.items():
            for stream_id in stream_ids:
                if owner == self._link.worker:
                    self._forget_local(stream_id)
                else:
                    self._link.commands.publish(keys.stop_channel(owner), f"forget:{stream_id}")
        log.info("stored_responses_evicted", extra={"count": len(evicted), "bound": self.bound})


def unlist(link: Link, stream_id: str, owner: bytes | None, client: bytes | None) -> None:
    """Take a deleted stored response off its key's list (nothing when it was not listed)."""
    if owner is not None:
        link.commands.zrem(stored_key((client or b"").decode()), member(stream_id, owner.decode()))
