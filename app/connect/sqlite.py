"""Reaching an SQLite file in DATA_DIR (the managed keys, the spend, the alerts' marks, without
Redis): made once with its tables, in WAL mode so that readers never wait for a writer; each use
one connection in one transaction (a write's holding the lock from its start), a failure of the
file the caller's own exception (a unique key's violation passes through as it is)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

BUSY_SECONDS = 2.0  # a worker waits this long at most for another's write


def prepare(folder: Path, name: str, tables: Iterable[str], fail: type[Exception]) -> Path:
    """The file `name` in `folder`, made (with `tables`, CREATE TABLE statements) if missing."""
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_SECONDS)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            for table in tables:
                db.execute(table)
            db.commit()
    except (OSError, sqlite3.Error) as error:
        raise fail(type(error).__name__) from error
    return path


@contextlib.contextmanager
def transaction(path: Path, fail: type[Exception], write: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection to `path` in one transaction, committed unless it raised."""
    try:
        db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    except sqlite3.Error as error:
        raise fail(type(error).__name__) from error
    try:
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        yield db
        db.execute("COMMIT")
    except sqlite3.IntegrityError:
        db.execute("ROLLBACK")
        raise
    except sqlite3.Error as error:
        raise fail(type(error).__name__) from error
    finally:
        db.close()


def claim(path: Path, mark: str, fail: type[Exception]) -> bool:
    """Mark the file `path` (its table `marks`) with `mark`: whether this caller is the first to."""
    with transaction(path, fail) as db:
        db.execute("CREATE TABLE IF NOT EXISTS marks (mark TEXT PRIMARY KEY)")
        return db.execute("INSERT OR IGNORE INTO marks VALUES (?)", (mark,)).rowcount == 1


def unclaim(path: Path, mark: str, fail: type[Exception]) -> None:
    """Take the mark `mark` off the file `path` (what it marked did not happen: the next caller tries)."""
    with transaction(path, fail) as db:
        db.execute("DELETE FROM marks WHERE mark = ?", (mark,))
