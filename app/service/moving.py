"""Moving the managed keys and the spend between DATA_DIR's files and Redis, so that a change of
STREAM_STORE loses neither: a worker that starts on Redis moves what the files hold into it, once
(the files are marked as moved, and a mark is claimed by one worker alone); `python -m
app.service.moving to-file` moves them back before an instance leaves Redis."""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from ..config import ClientKey, ConfigError, Settings, load_settings
from ..connect import sqlite
from ..connect.redis import Topology
from ..keystore.redis import RedisKeys
from ..keystore.store import FILE_NAME as KEYS_FILE
from ..keystore.store import KeyStore, SqliteKeys, StoreUnavailable
from ..limits.counters import CountersUnavailable
from ..limits.shared import RedisCounters
from ..spend.store import FILE_NAME as SPEND_FILE
from ..spend.store import KEPT_DAYS, RedisSpend, SpendStore, SpendUnavailable, SqliteSpend

log = logging.getLogger("chatwait.keys")

ALL_DAYS = ("0001-01-01", "9999-12-31")  # a file's rows, read in one query
MARK = "redis"  # what a file's mark says it was moved to


def to_redis(
    folder: Path, keys: KeyStore, spend: SpendStore, counters: RedisCounters, listed: Iterable[ClientKey]
) -> None:
    """Move the keys and the spend DATA_DIR's files hold into Redis's stores, and this month's
    spend into the budgets' counters (of the managed keys and those `listed` in the settings), if a
    file holds any not moved before (this worker claims each file's mark first: the others leave
    it; a move that fails takes its mark off again, for the next start)."""
    if (folder / KEYS_FILE).exists() and sqlite.claim(folder / KEYS_FILE, MARK, StoreUnavailable):
        try:
            moved = _keys(SqliteKeys(folder), keys)
        except StoreUnavailable:
            sqlite.unclaim(folder / KEYS_FILE, MARK, StoreUnavailable)
            raise
        log.warning("keys_moved", extra={"keys": moved, "source": str(folder / KEYS_FILE), "target": "redis"})
    if (folder / SPEND_FILE).exists() and sqlite.claim(folder / SPEND_FILE, MARK, SpendUnavailable):
        try:
            found = SqliteSpend(folder)
            rows, month = found.rows(*ALL_DAYS), found.month_so_far(time.time())
            spend.add(rows)
            counters.resume(month, [*listed, *(key.client_key() for key in keys.all())])
        except (SpendUnavailable, StoreUnavailable, CountersUnavailable) as error:
            sqlite.unclaim(folder / SPEND_FILE, MARK, SpendUnavailable)
            raise SpendUnavailable(str(error)) from error
        log.warning("spend_moved", extra={"rows": len(rows), "source": str(folder / SPEND_FILE), "target": "redis"})


def to_file(folder: Path, keys: KeyStore, spend: SpendStore) -> tuple[int, int]:
    """Move Redis's keys and spend into DATA_DIR's files (replacing what they held): how many of each."""
    for name in (KEYS_FILE, SPEND_FILE):
        for suffix in ("", "-wal", "-shm"):  # a stale write-ahead log would be read into the new file
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
    moved = _keys(keys, SqliteKeys(folder))
    today = datetime.datetime.now(datetime.UTC).date()
    rows = spend.rows((today - datetime.timedelta(days=KEPT_DAYS)).isoformat(), today.isoformat())  # what Redis keeps
    SqliteSpend(folder).add(rows)
    for name in (KEYS_FILE, SPEND_FILE):  # moved from Redis: not to be moved into it again
        sqlite.claim(folder / name, MARK, StoreUnavailable)
    return moved, len(rows)


def _keys(source: KeyStore, target: KeyStore) -> int:
    """Add every key of `source` to `target` (one whose name `target` holds is left: how many were added)."""
    return sum(target.add(key) for key in source.all())


def main(argv: list[str]) -> int:
    """`to-file`: Redis's keys and spend into DATA_DIR's files, before STREAM_STORE=memory."""
    if argv != ["to-file"]:
        print("Usage: python -m app.service.moving to-file", file=sys.stderr)
        return 2
    try:
        settings: Settings = load_settings()
    except ConfigError as error:
        print(f"ChatWait configuration error: {error}", file=sys.stderr)
        return 2
    topology = Topology.configured(settings.redis)
    keys, spend = RedisKeys(topology), RedisSpend(topology)
    try:
        moved, rows = to_file(Path(settings.access.data_dir).resolve(), keys, spend)
    except (StoreUnavailable, SpendUnavailable) as error:
        print(f"Redis or DATA_DIR could not be reached ({error}); nothing was changed in Redis.", file=sys.stderr)
        return 1
    finally:
        keys.close()
        spend.close()
    print(f"Moved {moved} keys and {rows} rows of spend from Redis into {settings.access.data_dir}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
