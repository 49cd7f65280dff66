"""A worker's view of the managed keys: each key's ClientKey by the digests of the secrets that
open it, read again within REFRESH_SECONDS of a change (a greenlet compares the store's
version), so that a key made, changed or revoked on any worker holds on every one within a
second. While the store is out of reach the last view stays (and that is logged once)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

from ..config import ClientKey
from .record import StoredKey
from .store import KeyStore, StoreUnavailable

log = logging.getLogger("chatwait.keys")

REFRESH_SECONDS = 0.5
MISS_SECONDS = 0.05  # an unknown digest reads the store's version at most this often (a flood of bad keys)


class KeyView:
    """The managed keys as this worker sees them (see the module)."""

    def __init__(self, store: KeyStore, with_defaults: Callable[[ClientKey], ClientKey]) -> None:
        self.store = store
        self._with_defaults = with_defaults
        self._records: dict[str, StoredKey] = {}  # by id
        self._keys: dict[str, ClientKey] = {}  # by id
        self._by_digest: dict[str, str] = {}  # digest -> id
        self._by_name: dict[str, str] = {}  # name -> id
        self._version = -1
        self._reached = True
        self._missed_at = -MISS_SECONDS  # when a digest it did not know last made it read the store
        self._refresher: gevent.Greenlet | None = None
        self.refresh()

    def start(self) -> None:
        """Read the store again every REFRESH_SECONDS (when its version moved)."""
        self._refresher = gevent.spawn(self._refresh_forever)

    def refresh(self) -> None:
        """Read the keys again if they changed (the last view stays while the store is away)."""
        try:
            version = self.store.version()
            if version != self._version:
                self._take(self.store.all())
                self._version = version
        except (ValueError, TypeError, KeyError):  # a record it cannot read: the last view stays
            log.exception("keys_unread")
            return
        except StoreUnavailable as error:
            if self._reached:
                log.warning("keys_unreached", extra={"error_type": str(error)})
            self._reached = False
            return
        if not self._reached:
            log.info("keys_reached")
        self._reached = True

    def find(self, digest: str) -> tuple[ClientKey, StoredKey] | None:
        """The key a secret's digest opens now (a rotated-out one only until its overlap ends). A
        digest it does not know makes it read the store's version first (at most once each
        MISS_SECONDS), so a secret made or rotated on another worker opens this one at once."""
        found = self._by_digest.get(digest)
        if found is None:
            now = time.monotonic()
            if now - self._missed_at < MISS_SECONDS:
                return None
            self._missed_at = now
            self.refresh()
            found = self._by_digest.get(digest)
            if found is None:
                return None
        record = self._records[found]
        return (self._keys[found], record) if digest in record.digests(time.time()) else None

    def name_of(self, digest: str) -> str | None:
        """The name of the key a secret's digest belongs to (a rotated-out one's too)."""
        found = self._by_digest.get(digest)
        return None if found is None else self._records[found].name

    def key(self, key_id: str) -> ClientKey | None:
        return self._keys.get(key_id)

    def record(self, key_id: str) -> StoredKey | None:
        return self._records.get(key_id)

    def named(self, name: str) -> StoredKey | None:
        found = self._by_name.get(name)
        return None if found is None else self._records[found]

    def records(self) -> list[StoredKey]:
        return list(self._records.values())

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.kill(block=False)
        self.store.close()

    def _take(self, records: list[StoredKey]) -> None:
        self._records = {record.id: record for record in records}
        self._keys = {record.id: self._with_defaults(record.client_key()) for record in records}
        self._by_name = {record.name: record.id for record in records}
        self._by_digest = {}
        for record in records:
            if record.revoked_at is None:
                self._by_digest[record.digest] = record.id
                if record.previous:
                    self._by_digest[record.previous] = record.id

    def _refresh_forever(self) -> None:
        while True:
            gevent.sleep(REFRESH_SECONDS)
            try:
                self.refresh()
            except Exception:  # a record it cannot read: the last view stays, and the next round tries again
                log.exception("keys_unread")
