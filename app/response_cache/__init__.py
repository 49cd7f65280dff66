"""The exact response cache (RESPONSE_CACHE, a key's `cache=`): whole answers kept by a digest
of everything that can change them, played back as new generations through the relay (every
family and transport gets its own shapes), at no upstream cost; identical requests in flight at
once share one generation (`flights`). In this worker's memory, or in Redis with the streams."""

from .cache import ResponseCache
from .lookup import Lookup
from .terms import BYPASS, HIT, KEPT_ENDINGS, MISS, Answers, Bounds, CacheUnavailable, Directives, Times

__all__ = [
    "BYPASS",
    "HIT",
    "KEPT_ENDINGS",
    "MISS",
    "Answers",
    "Bounds",
    "CacheUnavailable",
    "Directives",
    "Lookup",
    "ResponseCache",
    "Times",
]
