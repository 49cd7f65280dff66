"""What one of the journal's batches says to Redis: each call (a stream's admission, its new
frames, its release from the live count) as the commands to send."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

from ..stream import Stream
from . import link as keys
from .scripts import Scripts

Call = tuple[str, Stream, int, int]  # (admit, write or release), a stream, frames first .. end - 1
PROBE: Call = ("probe", None, 0, 0)  # type: ignore[assignment]  # a PING: is Redis back?
NO_IDENTITY: tuple[object, ...] = ("",) * 9  # the hash's fields, sent only by the write that creates it
Command = tuple[object, ...]


@dataclasses.dataclass(frozen=True)
class Batch:
    """How calls are written: the scripts, the keys' lifetimes, the owner and MAX_STREAMS."""

    scripts: Scripts
    live_ttl_ms: int
    done_ttl_ms: int
    owner: str
    max_streams: int

    def commands(self, call: Call, creating: bool, readmit: bool) -> Iterable[tuple[Command, Call]]:
        """The commands of one call, each with the call its reply belongs to: an admission
        (`readmit`: counted again whatever the count), a write (`creating`: from the first
        frame, making the stream's hash) with a release after the ending, or a release."""
        kind, stream, _, end = call
        sid = stream.stream_id
        if kind == "release":
            yield ("HDEL", keys.LIVE_KEY, sid), call
            return
        if kind == "admit" or readmit:
            args = (sid, self.max_streams, self.owner, "1" if readmit else "0")
            yield self.scripts.command("admit", [keys.LIVE_KEY], args), ("admit", stream, 0, 0)
        if kind == "admit":
            return
        final = stream.ended and end == stream.written
        yield self.scripts.command("end" if final else "write", keys.stream_keys(sid), self._args(call, creating)), call
        if final:
            yield ("HDEL", keys.LIVE_KEY, sid), ("release", stream, 0, 0)

    def _args(self, call: Call, creating: bool) -> list[object]:
        _, stream, first, end = call
        final = (stream.ending or "ended") if stream.ended and end == stream.written else "0"
        identity: tuple[object, ...] = NO_IDENTITY
        if creating:
            created = round(stream.created, 3)  # to the millisecond: the admin list is newest first
            identity = (
                self.owner,
                stream.correlation_id,
                stream.model,
                created,
                stream.writer.name,
                stream.client,
                json.dumps(stream.writer.echo) if stream.writer.echo else "",
                stream.retention.context,
                stream.tenure.revival,
            )
        elif first == 0 and end > 0:  # the priming frame names the model that answers: the hash too
            identity = ("", "", stream.model, *NO_IDENTITY[3:])
        done_ttl_ms = int(stream.retention.kept_for(self.done_ttl_ms / 1000) * 1000)
        outcome = json.dumps(stream.outcome.record()) if final != "0" and stream.outcome is not None else ""
        args: list[object] = [
            self.live_ttl_ms,
            done_ttl_ms,
            final,
            "1" if creating else "0",
            "",
            *identity,
            self.owner,
            outcome,
            stream.tenure.epoch,
            "0",
        ]
        for event_id, field, value in stream.entries(first, end):
            args += (event_id, field, value)
        return args
