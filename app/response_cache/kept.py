"""A whole answer as the response cache keeps it: its upstream's pieces as they came (a list a
read, text and typed deltas), how it ended and what it used; one JSON document, the same in
memory and in Redis, that any worker replays."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from ..providers.call import Usage
from ..providers.deltas import REFUSAL, Delta, decode

FORMAT = 1  # the document's version: another is a miss, never a misread


class Unreadable(ValueError):
    """A kept document this release cannot read (another format, or damaged): a miss."""


@dataclasses.dataclass(frozen=True)
class Kept:
    """A whole answer: its pieces by read, its finish reason (and the upstream's own word, the
    stop sequence that ended it), its usage as its upstream counted it (None: it gave none) and
    the upstream's id of its reply."""

    reads: tuple[tuple[str | Delta, ...], ...]
    finish_reason: str
    upstream_finish_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage | None = None
    response_id: str | None = None

    @property
    def refused(self) -> bool:
        """Whether the model refused (a refusal is never kept)."""
        return any(type(piece) is Delta and piece.kind == REFUSAL for read in self.reads for piece in read)

    def encode(self) -> bytes:
        """Its stored form."""
        reads = [[piece if type(piece) is str else _delta(piece) for piece in read] for read in self.reads]
        usage = None if self.usage is None else list(dataclasses.astuple(self.usage))
        found = [FORMAT, reads, self.finish_reason, self.upstream_finish_reason, self.stop_sequence, usage]
        return orjson.dumps([*found, self.response_id])

    @classmethod
    def decode(cls, blob: bytes) -> Kept:
        """The answer a stored form holds (Unreadable: not one this release wrote)."""
        try:
            version, reads, finish, upstream, stop, usage, response_id = orjson.loads(blob)
            if version != FORMAT:
                raise Unreadable(f"format {version!r}")
            pieces = tuple(tuple(piece if type(piece) is str else _piece(piece) for piece in read) for read in reads)
            counted = None if usage is None else Usage(*usage)
            return cls(pieces, finish, upstream, stop, counted, response_id)
        except (ValueError, TypeError, KeyError) as error:
            raise Unreadable(str(error)[:80]) from None


def _delta(piece: Delta) -> list[str]:
    kind, payload = piece.encode()
    return [kind.decode("ascii"), payload.decode("utf-8", "replace")]


def _piece(found: Any) -> Delta:
    kind, payload = found
    return decode(kind.encode("ascii"), payload.encode("utf-8"))
