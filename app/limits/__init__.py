"""Client keys' limits (max_streams, rpm, tpm) and where they are counted: in this worker's
memory, or in Redis, shared by every worker and instance (see `limits` and `counters`)."""

from .counters import Closing, Counters, CountersUnavailable, Quota, Verdict
from .headers import duration, headers
from .limits import Limits
from .memory import MemoryCounters

__all__ = [
    "Closing",
    "Counters",
    "CountersUnavailable",
    "Limits",
    "MemoryCounters",
    "Quota",
    "Verdict",
    "duration",
    "headers",
]
