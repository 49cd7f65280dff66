"""GET /v1/spend: where the calling key's budgets in money stand (what it spent today and this
month, UTC, and what remains), as its generations reserve and settle them, and (where spend is
kept) what its end users spent today and this month."""

from __future__ import annotations

import time

from flask import Blueprint

from ..accounts.budget import periods
from ..apis.request import client_key, services
from ..apis.schema import serialise
from ..errors import ApiError
from ..spend import report
from .schemas import SpendSchema

bp = Blueprint("spend", __name__)

PATH = "/v1/spend"


@bp.get(PATH)
def spend() -> dict[str, object]:
    """The calling key's budgets (none when it has none, or when the API asks for no key: then
    `key` is null, as nothing is counted per key)."""
    key = client_key()
    budgets: dict[str, object] = {}
    if key is not None and key.budgeted:
        verdict = services().limits.look(key)
        if verdict is None:
            raise ApiError("store_unavailable", "The client keys' counters live in Redis, which is out of reach.")
        budgets = {found.name: found.body() for found in verdict.budgets}
    found = {"object": "spend", "key": None if key is None else key.name, "budgets": budgets}
    if key is not None and services().billing.spending is not None:
        found["end_users"] = _end_users(key.name)
    return serialise(SpendSchema, found)


def _end_users(name: str) -> list[dict[str, object]]:
    """The key's end users this month, the dearest first."""
    spending = services().billing.spending
    assert spending is not None
    at = periods(time.time())
    return report.end_users(report.read(spending, at.month + "-01", at.day, name), at.day)
