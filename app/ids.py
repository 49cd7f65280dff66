"""Random ids for streams and requests: 128 random bits as 32 hex digits.

The same form as `uuid.uuid4().hex`, without building a UUID object, twice on every
streaming request's path.
"""

from __future__ import annotations

import os


def random_id() -> str:
    """A fresh id: 32 hex digits from the OS's random source."""
    return os.urandom(16).hex()
