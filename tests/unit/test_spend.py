"""Spend: a worker's tally summed and written once a second (kept while the store is away), the
SQLite store's rows, the report grouped by any of day, key, end user and model (JSON and CSV),
a key's end users, and the admin API's report adding up to the answers' cost headers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import httpx
import pytest
import respx

from app import build_app, close_app
from app.accounts.payer import Payer
from app.config import ClientKey, load_settings
from app.errors import ApiError
from app.spend import report
from app.spend.store import Row, SpendUnavailable, SqliteSpend
from app.spend.tally import SpendTally

from ..conftest import CANARY_KEY, FAKE_MODEL, UNIT_UPSTREAM
from ..sse import upstream_reply
from .test_budgets import MIDDAY

APP = ClientKey("", "app")
ALICE = Payer(APP, "alice")
ADMIN = "admin-key-0123456789abcdef"
CLIENT = "client-key-0123456789abcdef"


class Flaky:
    """A store that is away until told otherwise."""

    def __init__(self) -> None:
        self.away, self.added = True, []

    def add(self, rows) -> None:
        if self.away:
            raise SpendUnavailable("away")
        self.added += list(rows)

    def rows(self, first, last, key=None):
        return self.added

    def close(self) -> None:
        pass


def test_the_tally_sums_by_day_key_user_and_model_and_keeps_what_the_store_did_not_take() -> None:
    store = Flaky()
    tally = SpendTally(store)
    tally.add(ALICE, "m", 0.25, (10, 5))
    tally.add(ALICE, "m", 0.5, (1, 2))
    tally.add(Payer(APP), "m", None, (3, 0))
    tally.flush()  # away: kept
    tally.add(ALICE, "m", 0.25, (0, 1), requests=0)  # a delivery
    store.away = False
    tally.flush()
    by_user = {row.user: row for row in store.added}
    assert (by_user["alice"].nano, by_user["alice"].requests, by_user["alice"].input, by_user["alice"].output) == (
        1_000_000_000,
        2,
        11,
        8,
    )
    assert (by_user[""].nano, by_user[""].requests) == (0, 1)
    tally.flush()
    assert len(store.added) == 2, "nothing pending: nothing written"


def test_sqlite_rows_add_up_and_survive_a_new_store(tmp_path) -> None:
    store = SqliteSpend(tmp_path)
    store.add([Row("2026-11-27", "app", "alice", "m", 5, 1, 10, 2), Row("2026-11-28", "app", "bob", "m", 7, 1, 3, 4)])
    store.add([Row("2026-11-27", "app", "alice", "m", 5, 1, 10, 2), Row("2026-11-28", "other", "", "m", 1, 1, 1, 1)])
    again = SqliteSpend(tmp_path)
    assert again.rows("2026-11-27", "2026-11-27") == [Row("2026-11-27", "app", "alice", "m", 10, 2, 20, 4)]
    assert [row.key for row in again.rows("2026-11-01", "2026-11-30", "other")] == ["other"]
    assert len(again.rows("2026-11-01", "2026-11-30")) == 3


def test_the_report_groups_by_what_is_asked_and_says_it_as_csv() -> None:
    rows = [Row("2026-11-27", "app", "alice", "m", 250_000_000, 1, 10, 2),
            Row("2026-11-27", "app", "", "n", 5, 1, 1, 1),
            Row("2026-11-28", "app", "alice", "m", 500_000_000, 2, 20, 4)]  # fmt: skip
    by_user = report.grouped(rows, ("key", "end_user"))
    assert by_user == [
        {"key": "app", "end_user": None, "cost_usd": 5e-9, "requests": 1, "input_tokens": 1, "output_tokens": 1},
        {"key": "app", "end_user": "alice", "cost_usd": 0.75, "requests": 3, "input_tokens": 30, "output_tokens": 6},
    ]
    lines = list(csv.reader(io.StringIO(report.as_csv(by_user, ("key", "end_user")))))
    assert lines == [["key", "end_user", "cost_usd", "requests", "input_tokens", "output_tokens"],
                     ["app", "", "5e-09", "1", "1", "1"], ["app", "alice", "0.75", "3", "30", "6"]]  # fmt: skip
    assert report.end_users(rows, "2026-11-28") == [
        {"end_user": "alice", "today_usd": 0.5, "month_usd": 0.75, "requests": 3}
    ]


@pytest.mark.parametrize(
    "user", ['=HYPERLINK("http://evil.test","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_a_csv_cell_a_spreadsheet_would_evaluate_is_quoted(user: str) -> None:
    """The red team's finding: client-chosen end-user ids were written as formulas."""

    def cell(name: str) -> str:
        rows = [Row("2026-11-27", "app", name, "m", 1, 1, 1, 1)]
        return list(csv.reader(io.StringIO(report.as_csv(report.grouped(rows, ("end_user",)), ("end_user",)))))[1][0]

    assert cell(user) == "'" + user
    assert cell("bob=1") == "bob=1"


def test_a_report_spans_at_most_a_year_from_its_first_day() -> None:
    assert report.span(None, None, MIDDAY) == ("2026-11-01", "2026-11-27")
    for first, last in (("2026-11-28", "2026-11-27"), ("2025-01-01", "2026-11-27")):
        with pytest.raises(ApiError) as refused:
            report.span(first, last, MIDDAY)
        assert refused.value.error_code == "validation_error" and "to" in refused.value.fields


@pytest.fixture
def spend_app(tmp_path) -> Iterator:
    (tmp_path / "keys").write_text(f"{CLIENT} name=app\n")
    (tmp_path / "upstreams.yaml").write_text(
        f"upstreams:\n  - {{name: fake, url: {UNIT_UPSTREAM!r}, models: [{FAKE_MODEL}]}}\n"
        f"prices: {{{FAKE_MODEL}: {{input: 100, output: 1000}}}}\n"
    )
    settings = load_settings(environ={
        "OPENAI_API_KEY": CANARY_KEY, "UPSTREAMS_FILE": str(tmp_path / "upstreams.yaml"), "ADMIN_API_KEY": ADMIN,
        "DATA_DIR": str(tmp_path / "data"), "CHATWAIT_API_KEYS_FILE": str(tmp_path / "keys"),
    })  # fmt: skip
    application = build_app(settings)
    with respx.mock(using="httpx", assert_all_called=False) as router:
        router.post(f"{UNIT_UPSTREAM}/chat/completions").mock(
            side_effect=lambda request: httpx.Response(200, content=upstream_reply("Hello", " there."))
        )
        yield application
    close_app(application)


def test_the_admin_report_adds_up_to_the_cost_headers_by_key_and_end_user(spend_app) -> None:
    client = spend_app.test_client()
    costs: dict[str, float] = {}
    for user in ("alice", "alice", "bob", None):
        headers = {"Authorization": f"Bearer {CLIENT}"} | ({"X-ChatWait-User": user} if user else {})
        body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
        answer = client.post("/v1/chat/completions", json=body, headers=headers)
        assert answer.status_code == 200, answer.get_json()
        costs[user or ""] = costs.get(user or "", 0.0) + float(answer.headers["X-ChatWait-Cost-USD"])
    admin = {"Authorization": f"Bearer {ADMIN}"}
    found = client.get("/v1/admin/spend?group_by=key,end_user", headers=admin).get_json()
    assert {(e["key"], e["end_user"] or ""): round(e["cost_usd"], 9) for e in found["data"]} == {
        ("app", user): round(cost, 9) for user, cost in costs.items()
    }
    assert found["total_usd"] == pytest.approx(sum(costs.values()), abs=1e-9)
    assert [e["requests"] for e in found["data"]] == [1, 2, 1]
    text = client.get("/v1/admin/spend?format=csv&group_by=end_user,model", headers=admin).get_data(as_text=True)
    assert text.splitlines()[0] == "end_user,model,cost_usd,requests,input_tokens,output_tokens"
    own = client.get("/v1/spend", headers={"Authorization": f"Bearer {CLIENT}"}).get_json()
    assert [(e["end_user"], e["requests"]) for e in own["end_users"]] == [("alice", 2), ("bob", 1)]
    assert own["end_users"][0]["month_usd"] == pytest.approx(costs["alice"], abs=1e-9)
    assert client.get("/v1/admin/spend?group_by=nope", headers=admin).status_code == 400
    assert client.get("/v1/admin/spend?since=2026-01-01", headers=admin).status_code == 400
    assert client.get("/v1/admin/spend", headers={"Authorization": f"Bearer {CLIENT}"}).status_code == 401


def test_a_key_keeps_at_most_so_many_rows_a_day_the_rest_one_row_of_others(tmp_path, monkeypatch) -> None:
    from app.spend import store as spend_store

    monkeypatch.setattr(spend_store, "MAX_ROWS_A_DAY", 2)
    found = SqliteSpend(tmp_path)
    found.add([Row("2026-11-27", "app", user, "m", 1, 1, 1, 1) for user in ("a", "b", "c", "d", "a")])
    found.add([Row("2026-11-27", "other", "z", "m", 1, 1, 1, 1), Row("2026-11-28", "app", "c", "m", 1, 1, 1, 1)])
    rows = {(row.day, row.key, row.user): row.requests for row in found.rows("2026-11-27", "2026-11-28")}
    assert rows == {("2026-11-27", "app", "a"): 2, ("2026-11-27", "app", "b"): 1,
                    ("2026-11-27", "app", spend_store.OTHERS): 2, ("2026-11-27", "other", "z"): 1,
                    ("2026-11-28", "app", "c"): 1}  # fmt: skip


def test_what_a_tally_holds_unwritten_is_bounded(monkeypatch, caplog) -> None:
    import logging

    from app.spend import tally as spend_tally

    monkeypatch.setattr(spend_tally, "MAX_PENDING", 2)
    held = SpendTally(Flaky())
    with caplog.at_level(logging.WARNING):
        for user in ("a", "b", "c"):
            held.add(Payer(APP, user), "m", 0.1, (1, 1))
    assert len(held._pending) == 2 and [r.getMessage() for r in caplog.records] == ["spend_unrecorded"]
