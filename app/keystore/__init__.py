"""Client keys managed by the admin API (`/v1/admin/keys`), kept where every worker reads them:
Redis where there is one (STREAM_STORE=redis), else an SQLite file in DATA_DIR that survives
restarts. A key is kept as a record without its secret (its SHA-256 digest: `record`); each
worker holds a view of them all, read again within REFRESH_SECONDS of any change (`view`)."""

from __future__ import annotations

from .record import StoredKey
from .store import KeyStore, StoreUnavailable

__all__ = ["KeyStore", "StoreUnavailable", "StoredKey"]
