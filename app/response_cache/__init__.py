"""The exact response cache (RESPONSE_CACHE, a key's `cache=`): whole answers kept by a digest
of everything that can change them, played back as new generations through the relay (every
family and transport gets its own shapes), at no upstream cost; identical requests in flight at
once share one generation (`flights`). In this worker's memory, or in Redis with the streams."""

from __future__ import annotations

import dataclasses
from typing import Protocol

HIT, MISS, BYPASS = "hit", "miss", "bypass"  # X-ChatWait-Cache: what the cache made of a request
KEPT_ENDINGS = ("stop", "tool_calls")  # and `length` where RESPONSE_CACHE_LENGTH says


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
class Asked:
    """What the client's Cache-Control asks: look for a kept answer (no-cache: not), keep the new
    one (no-store: not)."""

    lookup: bool = True
    store: bool = True

    @classmethod
    def of(cls, cache_control: str | None) -> Asked:
        if not cache_control:
            return ASKED
        words = {word.strip().lower() for word in cache_control.split(",")}
        return cls("no-cache" not in words, "no-store" not in words)


ASKED = Asked()  # no Cache-Control: look, and keep


from .cache import ResponseCache  # noqa: E402  (it builds on the above)
from .lookup import Lookup  # noqa: E402

__all__ = ["BYPASS", "HIT", "MISS", "Answers", "Asked", "Bounds", "CacheUnavailable", "Lookup", "ResponseCache",
           "Times"]
