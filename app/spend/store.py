"""Where spend is kept: a row per UTC day, key, end user and model (what it cost in nano-USD,
its generations, their input and output tokens), added to as tallies come; at most
MAX_ROWS_A_DAY rows a key a day (the end users past it share one row, OTHERS). In SQLite (DATA_DIR,
beside the managed keys) or in Redis: a hash per key and day (`user\\tmodel\\tfield` -> count)
and a set per day of the keys that spent, each kept KEPT_DAYS."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import redis

from ..accounts.budget import periods
from ..connect import sqlite
from ..connect.redis import Later, Topology, on_slot

FILE_NAME = "spend.sqlite3"
KEPT_DAYS = 400  # a day's spend is kept this long (Redis; the file keeps it until it is removed)
MAX_ROWS_A_DAY = 10_000  # rows (end user and model) a key keeps a day
OTHERS = "(other end users)"  # the end user of the rows past MAX_ROWS_A_DAY
PREFIX = "chatwait:spend"
COUNTS = ("nano", "requests", "input", "output")


# A row's counts added to a key's day hash, as another end user's past the day's most fields.
# KEYS: the hash. ARGV: end user, model, most fields, lifetime (s), OTHERS, then nano, requests,
# input and output (`requests` always written: it tells a row is there).
_ADD = """#!lua
local field = ARGV[1] .. '\t' .. ARGV[2] .. '\t'
if redis.call('HEXISTS', KEYS[1], field .. 'requests') == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  field = ARGV[5] .. '\t' .. ARGV[2] .. '\t'
end
for i, name in ipairs({'nano', 'requests', 'input', 'output'}) do
  local count = tonumber(ARGV[5 + i])
  if count ~= 0 or name == 'requests' then redis.call('HINCRBY', KEYS[1], field .. name, count) end
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


class SpendUnavailable(Exception):
    """The spend store could not be read or written."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One day's spend of a key's end user on a model ("" : no key, no end user)."""

    day: str
    key: str
    user: str
    model: str
    nano: int = 0
    requests: int = 0
    input: int = 0
    output: int = 0


class SpendStore(Protocol):
    def add(self, rows: Iterable[Row]) -> None:
        """Add each row's counts to what its day, key, end user and model hold."""
        ...

    def rows(self, first: str, last: str, key: str | None = None) -> list[Row]:
        """The rows of the days `first` to `last` (YYYY-MM-DD, both included), of `key` alone."""
        ...

    def close(self) -> None: ...


class SqliteSpend:
    """Spend in an SQLite file: it survives restarts; an instance's workers share it."""

    def __init__(self, folder: Path) -> None:
        table = (
            "CREATE TABLE IF NOT EXISTS spend (day TEXT, key TEXT, user TEXT, model TEXT, nano INTEGER,"
            " requests INTEGER, input INTEGER, output INTEGER, PRIMARY KEY (day, key, user, model))"
        )
        self._path = sqlite.prepare(folder, FILE_NAME, (table,), SpendUnavailable)

    def add(self, rows: Iterable[Row]) -> None:
        upsert = (
            "INSERT INTO spend VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, key, user, model) DO UPDATE SET "
            "nano = nano + excluded.nano, requests = requests + excluded.requests, "
            "input = input + excluded.input, output = output + excluded.output"
        )
        with sqlite.transaction(self._path, SpendUnavailable) as db:
            for row in rows:
                where = (row.day, row.key, row.user, row.model)
                found = db.execute("SELECT 1 FROM spend WHERE day = ? AND key = ? AND user = ? AND model = ?", where)
                if found.fetchone() is None:
                    held = db.execute("SELECT COUNT(*) FROM spend WHERE day = ? AND key = ?", where[:2]).fetchone()[0]
                    row = row if held < MAX_ROWS_A_DAY else dataclasses.replace(row, user=OTHERS)
                db.execute(upsert, dataclasses.astuple(row))

    def rows(self, first: str, last: str, key: str | None = None) -> list[Row]:
        query, args = "SELECT * FROM spend WHERE day BETWEEN ? AND ?", [first, last]
        if key is not None:
            query, args = query + " AND key = ?", [*args, key]
        with sqlite.transaction(self._path, SpendUnavailable, write=False) as db:
            return [Row(*found) for found in db.execute(query + " ORDER BY day, key, user, model", args)]

    def month_so_far(self, now: float) -> list[tuple[str, str, str, int]]:
        """What each key's end user ("": none, or past the day's rows) spent each day of `now`'s
        month until its day, in nano-USD (where the budgets' counters start, on the memory store)."""
        at = periods(now)
        first, last = f"{at.month}-01", at.day
        query = (
            "SELECT key, CASE WHEN user = ? THEN '' ELSE user END AS who, day, SUM(nano) FROM spend"
            " WHERE day BETWEEN ? AND ? AND nano > 0 GROUP BY key, who, day"
        )
        with sqlite.transaction(self._path, SpendUnavailable, write=False) as db:
            return [(key, user, day, int(nano)) for key, user, day, nano in db.execute(query, (OTHERS, first, last))]

    def close(self) -> None:
        """Nothing held open."""


class RedisSpend:
    """Spend in Redis, for every instance."""

    def __init__(self, topology: Topology) -> None:
        self._client = Later(topology, 4, 2.0)

    def add(self, rows: Iterable[Row]) -> None:
        kept = KEPT_DAYS * 86_400
        with self._reaching() as client:
            pipe = client.pipeline(transaction=False)
            for row in rows:
                name = _day_key(row.key, row.day)
                counts = [getattr(row, field) for field in COUNTS]
                args = [row.user, row.model, MAX_ROWS_A_DAY * len(COUNTS), kept, OTHERS, *counts]
                pipe.execute_command("EVAL", _ADD, 1, name, *args, **on_slot(pipe, name))
                pipe.sadd(_day_index(row.day), row.key)
                pipe.expire(_day_index(row.day), kept)
            pipe.execute()

    def rows(self, first: str, last: str, key: str | None = None) -> list[Row]:
        days = _days(first, last)
        with self._reaching() as client:
            if key is None:
                pipe = client.pipeline(transaction=False)
                for day in days:
                    pipe.smembers(_day_index(day))
                keys_by_day = [sorted(_text(name) for name in found) for found in pipe.execute()]
            else:
                keys_by_day = [[key] for _ in days]
            pipe = client.pipeline(transaction=False)
            asked = [(day, name) for day, names in zip(days, keys_by_day, strict=True) for name in names]
            for day, name in asked:
                pipe.hgetall(_day_key(name, day))
            found = pipe.execute()
        return [row for (day, name), held in zip(asked, found, strict=True) for row in _rows(day, name, held)]

    def close(self) -> None:
        self._client.close()

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[Any]:
        try:
            yield self._client()
        except redis.RedisError as error:
            raise SpendUnavailable(type(error).__name__) from error


def _day_key(key: str, day: str) -> str:
    return f"{PREFIX}:{{{key}}}:{day}"


def _day_index(day: str) -> str:
    return f"{PREFIX}:keys:{day}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rows(day: str, key: str, held: dict[Any, Any]) -> list[Row]:
    """A key's day hash as rows, by end user and model."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for field, value in held.items():
        user, model, name = _text(field).rsplit("\t", 2)
        counts.setdefault((user, model), {})[name] = int(value)
    return [Row(day, key, user, model, **found) for (user, model), found in sorted(counts.items())]


def _days(first: str, last: str) -> list[str]:
    start, end = datetime.date.fromisoformat(first), datetime.date.fromisoformat(last)
    return [(start + datetime.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
