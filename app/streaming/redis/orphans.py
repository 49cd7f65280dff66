"""A live stream whose owner is gone, ended: one terminal generation_lost error, written in Redis
for every follower, by exactly one worker of the cluster (the ending is fenced by the stream's
epoch and written only if its newest entry is still the one read)."""

from __future__ import annotations

import json
import logging
import time

from ...errors import ApiError
from ...generation.outcome import Outcome
from ...providers.call import Usage
from ...providers.deltas import fold_stored
from . import link as keys
from .entries import stored_chunks, teach, writer_of
from .link import Link

log = logging.getLogger("chatwait.follow")


def end_if_owner_gone(link: Link, stream_id: str, meta: dict[bytes, bytes]) -> bool:
    """End a live stream (`meta`: its hash) whose owner is gone with one terminal generation_lost
    error; True when this call ended it (exactly one caller in the cluster does: the ending is
    written only if the newest entry is still the one read)."""
    owner = meta.get(b"owner", b"").decode()
    writer = writer_of(stream_id, meta)
    error = ApiError("generation_lost", "The worker generating this reply stopped renewing its lease.")
    for _ in range(3):  # the owner may have written its last entries meanwhile: read again
        pipe = link.commands.pipeline(transaction=False)
        pipe.xrange(keys.events_key(stream_id))
        pipe.hget(keys.meta_key(stream_id), "epoch")
        entries, epoch = pipe.execute()
        chunks = list(stored_chunks(entries))
        last = keys.event_id(entries[-1][0]) if entries else -1
        duration_ms = round(max(0.0, time.time() - float(meta.get(b"created", b"0"))) * 1000, 1)
        text, parts = fold_stored(chunks)
        teach(writer, entries)
        usage = Usage(0, 0, estimated=True)
        outcome = Outcome(text, len(chunks), usage, duration_ms, None, error=error, parts=parts)
        frames: list[object] = [0, "h", writer.priming()] if last < 0 else []
        frames += (max(last, 0) + 1, "t", writer.terminal(len(chunks), len(text), outcome))
        identity = (owner, "", "", "", "", "", "", "", "")
        record = json.dumps(outcome.record())
        fencing = [int(epoch or 0), 1]  # written as the owner found gone, whose later writes it refuses
        args = [link.live_ttl_ms, link.done_ttl_ms, "generation_lost", "0", last, *identity, owner, record]
        status, _ = link.scripts.run(link.commands, "end", keys.stream_keys(stream_id), [*args, *fencing, *frames])
        if status == b"taken":
            return False  # another worker claimed it meanwhile: it goes on there
        if status != b"moved":
            ended = status == b"ok"
            if ended:
                log.warning("generation_lost", extra={"stream_id": stream_id, "owner": owner, "chunks": len(chunks)})
            link.commands.hdel(keys.LIVE_KEY, stream_id)
            return ended
    return False
