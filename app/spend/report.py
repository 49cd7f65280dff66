"""The spend report: rows summed by any of day, key, end user and model (JSON or CSV), and a
key's own view of its end users (today's and this month's spend, the dearest first)."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable
from typing import Any

from ..accounts.budget import NANO, periods
from ..errors import ApiError
from .store import Row, SpendUnavailable
from .tally import SpendTally

GROUPS = {"day": "day", "key": "key", "end_user": "user", "model": "model"}  # a group's name -> a row's field
MAX_DAYS = 366  # days one report spans at most
MAX_END_USERS = 100  # end users a key's own view lists
COLUMNS = ("cost_usd", "requests", "input_tokens", "output_tokens")


def read(tally: SpendTally, first: str, last: str, key: str | None = None) -> list[Row]:
    """The rows of the days `first` to `last` (of `key` alone), this worker's latest spend written
    first; ApiError(store_unavailable) while the store is out of reach."""
    try:
        tally.flush()
        return tally.store.rows(first, last, key)
    except SpendUnavailable:
        raise ApiError("store_unavailable", "The spend is kept in a store that is out of reach.") from None


def span(first: str | None, last: str | None, now: float) -> tuple[str, str]:
    """The days a report spans: `first` (the month's first day by default) to `last` (today),
    at most MAX_DAYS; ApiError(validation_error) otherwise."""
    at = periods(now)
    first, last = first or at.month + "-01", last or at.day
    days = (datetime.date.fromisoformat(last) - datetime.date.fromisoformat(first)).days
    if not 0 <= days < MAX_DAYS:
        message = f"A day from `from` on, at most {MAX_DAYS} days in all."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={"to": [message]})
    return first, last


def grouped(rows: Iterable[Row], by: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows summed by the groups `by` (names of GROUPS), in their order."""
    sums: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        found = sums.setdefault(tuple(getattr(row, GROUPS[name]) for name in by), [0, 0, 0, 0])
        for index, count in enumerate((row.nano, row.requests, row.input, row.output)):
            found[index] += count
    return [
        {**{name: value or None for name, value in zip(by, values, strict=True)}, **_columns(counts)}
        for values, counts in sorted(sums.items())
    ]


def as_csv(data: list[dict[str, Any]], by: tuple[str, ...]) -> str:
    """The report as CSV: a header, then a line per group (an empty cell: no key, no end user)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*by, *COLUMNS])
    for entry in data:
        writer.writerow([*(_cell(entry[name]) for name in by), *(entry[c] for c in COLUMNS)])
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula


def _cell(value: str | None) -> str:
    """A text cell as a spreadsheet shows it and never evaluates: one that starts like a formula
    (an end user's id is the client's choice: `=HYPERLINK(...)`) behind a quote, as OWASP advises."""
    if value is None:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def end_users(rows: Iterable[Row], today: str) -> list[dict[str, Any]]:
    """A key's end users this month (its rows from the month's first day), the dearest first:
    what each spent today and this month."""
    month: dict[str, list[int]] = {}
    for row in rows:
        if not row.user:
            continue
        found = month.setdefault(row.user, [0, 0, 0])
        found[1] += row.nano
        found[2] += row.requests
        if row.day == today:
            found[0] += row.nano
    dearest = sorted(month.items(), key=lambda item: (-item[1][1], item[0]))[:MAX_END_USERS]
    return [
        {"end_user": user, "today_usd": day / NANO, "month_usd": total / NANO, "requests": requests}
        for user, (day, total, requests) in dearest
    ]


def _columns(counts: list[int]) -> dict[str, Any]:
    nano, requests, input_tokens, output_tokens = counts
    return {"cost_usd": nano / NANO, "requests": requests, "input_tokens": input_tokens, "output_tokens": output_tokens}
