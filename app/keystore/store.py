"""Where managed keys are kept: the operations every store does, and the one without Redis, an
SQLite file in DATA_DIR (one database for an instance's workers, in WAL mode; a change and its
version bump in one transaction)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from .record import StoredKey

FILE_NAME = "keys.sqlite3"
BUSY_MS = 2_000  # a worker waits this long at most for another's write


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

    def put(self, key: StoredKey) -> None:
        """Keep a key's new state (its name unchanged)."""
        ...

    def close(self) -> None: ...


class SqliteKeys:
    """Keys in an SQLite file: they survive restarts; an instance's workers share them."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / FILE_NAME
        try:
            with contextlib.closing(sqlite3.connect(self._path, timeout=BUSY_MS / 1000)) as db:
                db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
        except sqlite3.Error as error:
            raise StoreUnavailable(type(error).__name__) from error
        with self._open() as db:
            db.execute("CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, name TEXT UNIQUE, record BLOB)")
            db.execute("CREATE TABLE IF NOT EXISTS version (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER)")
            db.execute("INSERT OR IGNORE INTO version VALUES (1, 0)")

    def version(self) -> int:
        with self._open(write=False) as db:
            return int(db.execute("SELECT n FROM version WHERE id = 1").fetchone()[0])

    def all(self) -> list[StoredKey]:
        with self._open(write=False) as db:
            return [StoredKey.decoded(row[0]) for row in db.execute("SELECT record FROM keys ORDER BY rowid")]

    def add(self, key: StoredKey) -> bool:
        try:
            with self._open() as db:
                db.execute("INSERT INTO keys VALUES (?, ?, ?)", (key.id, key.name, key.encoded()))
                db.execute("UPDATE version SET n = n + 1 WHERE id = 1")
        except sqlite3.IntegrityError:
            return False
        return True

    def put(self, key: StoredKey) -> None:
        with self._open() as db:
            db.execute("UPDATE keys SET record = ? WHERE id = ?", (key.encoded(), key.id))
            db.execute("UPDATE version SET n = n + 1 WHERE id = 1")

    def close(self) -> None:
        """Nothing held open: each call opens the file."""

    @contextlib.contextmanager
    def _open(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction (committed unless it raised; a write's holds the lock
        from its start); StoreUnavailable when the file cannot be read or written."""
        try:
            db = sqlite3.connect(self._path, timeout=BUSY_MS / 1000, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreUnavailable(type(error).__name__) from error
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise
        except sqlite3.Error as error:
            raise StoreUnavailable(type(error).__name__) from error
        finally:
            db.close()
