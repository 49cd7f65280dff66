"""What the response cache's parts share: what it made of a request (hit, miss, bypass), which
endings it keeps, its bounds and times, where kept answers are (`Answers`), and what a request's
Cache-Control header asks of it (`Directives`)."""

from __future__ import annotations

import dataclasses
from typing import Protocol

HIT, MISS, BYPASS = "hit", "miss", "bypass"  # X-ChatWait-Cache: what the cache made of a request
KEPT_ENDINGS = ("stop", "tool_calls")  # and `length` where RESPONSE_CACHE_LENGTH says
MAX_HEADER_CHARS = 1024  # of a Cache-Control header read for directives


class CacheUnavailable(RuntimeError):
    """Where the answers are kept did not answer (Redis): nothing was cleared."""


@dataclasses.dataclass(frozen=True)
class Times:
    """How long a follower waits: for a leader's next read in this worker (`idle_seconds`), for
    another worker's answer (`follow_seconds`); how long a worker's lead holds (`claim_seconds`)."""

    idle_seconds: float
    follow_seconds: float
    claim_seconds: float


@dataclasses.dataclass(frozen=True)
class Bounds:
    """What the kept answers may hold: entries, bytes (of them, one key's), and how long each is kept."""

    entries: int
    bytes: int
    ttl_seconds: float
    key_bytes: int | None = None  # one key's answers (None: the whole bound)

    @property
    def per_key(self) -> int:
        return self.bytes if self.key_bytes is None else self.key_bytes


class Answers(Protocol):
    """Where kept answers are (`memory.MemoryAnswers`, `redis.RedisAnswers`)."""

    def get(self, digest: str) -> bytes | None: ...
    def put(self, digest: str, scope: str, blob: bytes) -> None: ...
    def clear(self, scope: str | None = None, digest: str | None = None) -> int: ...
    def held(self) -> tuple[int, int]: ...
    def claim(self, digest: str, token: str, seconds: float) -> bool: ...
    def claimed(self, digest: str) -> bool: ...
    def release(self, digest: str, token: str) -> None: ...
    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Directives:
    """What the client's Cache-Control header (or, without one, its Pragma) asks: look for a kept
    answer (no-cache, max-age=0: not), keep the new one (no-store: not). A directive is read by its
    name in any case, with or without a value (`no-store="x"`)."""

    lookup: bool = True
    store: bool = True

    @classmethod
    def of(cls, header: str | None) -> Directives:
        if not header:
            return DEFAULT
        named = {}
        for directive in header[:MAX_HEADER_CHARS].split(","):
            name, _, value = directive.partition("=")
            named[name.strip().lower()] = value.strip().strip('"')
        fresh = "no-cache" in named or named.get("max-age") == "0"
        return cls(not fresh, "no-store" not in named)


DEFAULT = Directives()  # no Cache-Control: look, and keep
