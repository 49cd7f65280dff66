"""Where managed keys are kept: the operations every store does, and the one without Redis, an
SQLite file in DATA_DIR (one database for an instance's workers; a change, the check of the
revision it read and the version bump in one transaction)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

from ..connect import sqlite
from .record import StoredKey

FILE_NAME = "keys.sqlite3"


class StoreUnavailable(Exception):
    """The store could not be read or written (Redis out of reach, the file locked or gone)."""


class KeyStore(Protocol):
    """Managed keys, as every worker and instance of a deployment reads and changes them."""

    def version(self) -> int:
        """A number that changes with every change (what a worker compares to read them again)."""
        ...

    def all(self) -> list[StoredKey]:
        """Every key, revoked ones included."""
        ...

    def add(self, key: StoredKey) -> bool:
        """Keep a new key; False when its name is taken."""
        ...

    def get(self, key_id: str) -> StoredKey | None:
        """One key as the store holds it now (not a worker's view of it)."""
        ...

    def replace(self, key: StoredKey) -> bool:
        """Keep a key's next revision (its name unchanged); False when the stored one is no longer
        the revision before it (another change came first)."""
        ...

    def close(self) -> None: ...


class SqliteKeys:
    """Keys in an SQLite file: they survive restarts; an instance's workers share them."""

    def __init__(self, folder: Path) -> None:
        tables = (
            "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, name TEXT UNIQUE, record BLOB)",
            "CREATE TABLE IF NOT EXISTS version (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER)",
            "INSERT OR IGNORE INTO version VALUES (1, 0)",
        )
        self._path = sqlite.prepare(folder, FILE_NAME, tables, StoreUnavailable)

    def version(self) -> int:
        with sqlite.transaction(self._path, StoreUnavailable, write=False) as db:
            return int(db.execute("SELECT n FROM version WHERE id = 1").fetchone()[0])

    def all(self) -> list[StoredKey]:
        with sqlite.transaction(self._path, StoreUnavailable, write=False) as db:
            return [StoredKey.decoded(row[0]) for row in db.execute("SELECT record FROM keys ORDER BY rowid")]

    def add(self, key: StoredKey) -> bool:
        try:
            with sqlite.transaction(self._path, StoreUnavailable) as db:
                db.execute("INSERT INTO keys VALUES (?, ?, ?)", (key.id, key.name, key.encoded()))
                db.execute("UPDATE version SET n = n + 1 WHERE id = 1")
        except sqlite3.IntegrityError:
            return False
        return True

    def get(self, key_id: str) -> StoredKey | None:
        with sqlite.transaction(self._path, StoreUnavailable, write=False) as db:
            row = db.execute("SELECT record FROM keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else StoredKey.decoded(row[0])

    def replace(self, key: StoredKey) -> bool:
        with sqlite.transaction(self._path, StoreUnavailable) as db:
            row = db.execute("SELECT record FROM keys WHERE id = ?", (key.id,)).fetchone()
            if row is None or StoredKey.decoded(row[0]).revision != key.revision - 1:
                return False
            db.execute("UPDATE keys SET record = ? WHERE id = ?", (key.encoded(), key.id))
            db.execute("UPDATE version SET n = n + 1 WHERE id = 1")
        return True

    def close(self) -> None:
        """Nothing held open: each call opens the file."""
