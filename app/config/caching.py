"""The response cache's settings (`app.response_cache`): whether whole answers are kept and
replayed, for how long, within which bounds, and which answers may be."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """The response cache: off by default; a key's `cache=` line field says otherwise for it."""

    response_cache: bool = False
    response_cache_ttl_seconds: float = 3600.0
    response_cache_max_bytes: int = 64 * 1_048_576  # every entry's bytes (a worker's; in Redis, the cluster's)
    response_cache_key_bytes: int = 16 * 1_048_576  # one key's entries' bytes (a key churning evicts its own)
    response_cache_max_entries: int = 10_000
    response_cache_entry_bytes: int = 1_048_576  # a bigger answer is not kept
    response_cache_shared: bool = False  # one cache for every key (else each key its own)
    response_cache_scope: str = "key"  # end_user: each end user's answers apart (a hit tells no one another asked)
    response_cache_sampled: bool = False  # answers sampled at a temperature above 0 without a seed too
    response_cache_unsampled: bool = False  # a request naming no sampling replayed (its model's answer)
    response_cache_length: bool = False  # answers that reached their length limit too
