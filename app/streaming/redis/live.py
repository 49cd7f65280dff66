"""The cluster's live streams, read from Redis for the admin API: the `live` registry (bounded by
MAX_STREAMS), each stream's hash and its event count, in one pipeline."""

from __future__ import annotations

from ..live import LiveStream, newest
from . import link as keys
from .link import Link, store_errors

_FIELDS = ("model", "wire", "client", "created")


def live_streams(link: Link, limit: int) -> tuple[int, list[LiveStream]]:
    """How many streams the cluster counts live, and the `limit` newest whose hash is written
    (a stream admitted a moment ago has none yet). ApiError(store_unavailable) without Redis."""
    with store_errors("listing the live streams"):
        owners = {sid.decode(): owner.decode() for sid, owner in link.commands.hgetall(keys.LIVE_KEY).items()}
        pipe = link.commands.pipeline(transaction=False)
        for stream_id in owners:
            pipe.hmget(keys.meta_key(stream_id), *_FIELDS)
            pipe.xlen(keys.events_key(stream_id))
        found = pipe.execute() if owners else []
    streams = []
    for (stream_id, owner), fields, events in zip(owners.items(), found[::2], found[1::2], strict=True):
        model, wire, client, created = (b"" if value is None else value for value in fields)
        if created:
            text = model.decode(), wire.decode(), client.decode()
            streams.append(LiveStream(stream_id, *text, float(created), int(events), owner))
    return len(owners), newest(streams, limit)
