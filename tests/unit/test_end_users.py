"""End users behind a key: the key file's user_* fields, the request's end user (the header,
else the family's field; bounded), and the limits and budgets each end user is held to in the
memory counters and the Limits façade, beside the key's own and named in every refusal."""

from __future__ import annotations

import pytest

from app.accounts.payer import Payer
from app.apis.end_users import ENVIRON, HEADER, MAX_CHARS, end_user
from app.config import ClientKey, ConfigError, load_settings
from app.config.keys import EndUserLimits
from app.config.prices import Price
from app.errors import ApiError
from app.limits import Closing, Limits, MemoryCounters, memory
from app.metrics.catalogue import NoMetrics
from app.service.keys import ClientKeys

from ..payers import admit, count
from ..payers import end_user as user_of
from .test_budgets import MIDDAY
from .test_key_limits import Clock

BASE = {"OPENAI_API_KEY": "sk-test"}
KEY = "k" * 16
PRICE = Price(input=1.0, output=10.0)  # USD per million tokens


def _keys(tmp_path, text: str) -> dict[str, ClientKey]:
    path = tmp_path / "keys"
    path.write_text(text, encoding="utf-8")
    return {entry.key: entry for entry in load_settings(environ={**BASE, "CHATWAIT_API_KEYS_FILE": str(path)}).keys}


def test_user_fields_of_a_key_line_are_what_each_end_user_is_held_to(tmp_path) -> None:
    line = f"{KEY}a name=app rpm=100 user_rpm=5 user_tpm=900 user_max_streams=2 user_budget_day=0.5 user_budget_month=3"
    keys = _keys(tmp_path, f"{line}\n{KEY}b name=plain\n")
    app = keys[f"{KEY}a"]
    assert app.rpm == 100 and app.users == EndUserLimits(2, 5, 900, 0.5, 3.0) and app.users.budgeted
    assert keys[f"{KEY}b"].users is None and not keys[f"{KEY}b"].limited
    only_users = _keys(tmp_path, f"{KEY}c user_rpm=1\n")[f"{KEY}c"]
    assert only_users.limited and only_users.rpm is None, "a key whose end users are limited is counted"


@pytest.mark.parametrize(
    ("word", "said"),
    [("user_rpm=0", "user_rpm='0' is not valid"), ("user_budget_day=-1", "user_budget_day='-1' is not valid"),
     ("user_name=x", "'user_name' is not a field"), ("user_tpm=1 user_tpm=2", "user_tpm is given twice")],
)  # fmt: skip
def test_a_bad_user_field_is_refused_naming_its_line(tmp_path, word: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _keys(tmp_path, f"{KEY}a name=app {word}\n")
    assert "line 1" in str(refused.value) and said in str(refused.value) and KEY not in str(refused.value)


def test_the_end_user_is_the_header_else_the_familys_field() -> None:
    assert end_user({ENVIRON: "alice"}, {"user": "bob"}) == "alice", "the header wins"
    assert end_user({}, {"safety_identifier": "carol", "user": "bob"}) == "carol"
    assert end_user({}, {"user": "bob"}) == "bob"
    assert end_user({}, {"user": ""}) is None and end_user({}, {"user": "  "}) is None and end_user({}, {}) is None
    assert end_user({ENVIRON: "José ü 👋 user@example.com"}, {}) == "José ü 👋 user@example.com"


@pytest.mark.parametrize(
    ("headers", "options", "field"),
    [({ENVIRON: "a" * (MAX_CHARS + 1)}, {}, HEADER), ({ENVIRON: "  "}, {}, HEADER), ({ENVIRON: "a\nb"}, {}, HEADER),
     ({}, {"user": "a\x00b"}, "user"), ({}, {"safety_identifier": "a\x85"}, "safety_identifier")],
)  # fmt: skip
def test_an_end_user_too_long_blank_or_with_control_characters_is_a_400_naming_where(headers, options, field) -> None:
    with pytest.raises(ApiError) as refused:
        end_user(headers, options)
    error = refused.value
    assert error.status == 400 and error.error_code == "validation_error" and list(error.fields) == [field]
    assert str(MAX_CHARS) in error.fields[field][0]


def test_an_end_user_is_counted_only_where_the_key_limits_its_end_users() -> None:
    limited = ClientKey("", "app", users=EndUserLimits(rpm=1))
    keys = ClientKeys([])
    assert keys.resolve(Payer(limited, "alice")) == Payer(limited, "alice", EndUserLimits(rpm=1))
    plain = ClientKey("", "plain", rpm=5)
    assert keys.resolve(Payer(plain, "alice")).counted_user is None, "no limits of their own: the key's alone"
    assert keys.resolve(Payer(limited)).counted_user is None


def test_each_end_user_is_held_to_the_users_limits_and_the_key_to_its_own() -> None:
    counters = MemoryCounters(Clock())
    key = ClientKey("", "app", rpm=5, users=EndUserLimits(max_streams=1, rpm=2))
    alice, bob = user_of(key, "alice"), user_of(key, "bob")
    assert count(counters, alice, "a1", 1).refused is None
    refused = count(counters, alice, "a2", 1)
    assert (refused.refused, refused.retry_after) == ("user_max_streams", 1.0), "alice has one running"
    assert count(counters, bob, "b1", 1).refused is None, "bob is another end user"
    counters.release(Closing(alice, "a1"))
    assert count(counters, alice, "a3", 1).refused is None
    counters.release(Closing(alice, "a3"))
    at_rpm = count(counters, alice, "a4", 1)
    assert at_rpm.refused == "user_rpm" and at_rpm.retry_after == pytest.approx(60.0)
    assert at_rpm.requests.remaining == 2, "the headers tell the key's own limits; a refusal counts nothing"
    counters.release(Closing(bob, "b1"))
    assert count(counters, user_of(key, "carol"), "c1", 1).refused is None
    assert count(counters, user_of(key, "dave"), "d1", 1).refused is None, "the key's fifth"
    assert count(counters, user_of(key, "erin"), "e1", 1).refused == "rpm", "the key's own limit"
    assert count(counters, key, "n1", 1).refused == "rpm", "a request without an end user: the key's limits alone"


def test_end_user_tokens_reserve_and_come_back_as_the_keys_do() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    key = ClientKey("", "app", tpm=1_000, users=EndUserLimits(tpm=100))
    alice = user_of(key, "alice")
    first = count(counters, alice, "a1", 10, 50)
    assert (first.refused, first.reserved, first.tokens.remaining) == (None, 50, 940)
    lowered = count(counters, alice, "a2", 10, 500)
    assert (lowered.refused, lowered.reserved) == (None, 100 - 60 - 10), "lowered to what alice's tpm has left"
    assert count(counters, alice, "a3", 10, 5).refused == "user_tpm"
    counters.release(Closing(alice, "a1", refund=50, second=first.second))
    counters.spend([(alice, 5)])
    taken = count(counters, alice, "a4", 10, 5)
    assert (taken.refused, taken.reserved) == (None, 5), "100 - 50 given back + 5 produced: 55 counted"
    assert count(counters, alice, "a5", 40, 1).refused == "user_tpm", "70 counted: 41 more do not fit"
    clock.now += 61
    assert count(counters, alice, "a6", 40, 1).refused is None, "the minute has passed"


def test_end_user_budgets_reserve_settle_and_refuse_beside_the_keys() -> None:
    limits = Limits(MemoryCounters(Clock(MIDDAY)), NoMetrics())
    key = ClientKey("", "app", budget_day=1.0, users=EndUserLimits(budget_day=0.01))
    alice, bob = user_of(key, "alice"), user_of(key, "bob")
    ticket, verdict = admit(limits, alice, 1_000, 1_000, PRICE)  # 0.011 asked: lowered to alice's 0.01
    assert ticket.max_tokens == 900 and ticket.payer == alice
    assert [(s.name, s.reserved) for s in verdict.user_budgets] == [("user_budget_day", pytest.approx(0.01))]
    assert [(s.name, s.reserved) for s in verdict.budgets] == [("budget_day", pytest.approx(0.01))]
    with pytest.raises(ApiError) as refused:
        admit(limits, alice, 10, 10, PRICE)
    error = refused.value
    assert error.error_code == "budget_exhausted" and error.retry_after == 12 * 3600
    assert "end user 'alice' of the key 'app'" in error.detail and "user_budget_day" in error.detail
    other, _ = admit(limits, bob, 10, 10, PRICE)
    assert other.max_tokens is None, "bob has his own budget"
    limits.end(ticket, 100, cost_usd=0.002)
    limits.end(other, 10, cost_usd=0.0001)
    found = count(limits.counters, alice, "peek")
    assert found.user_budgets[0].spent == pytest.approx(0.002 + 0.0), "alice settled what she cost"
    assert found.user_budgets[0].reserved == 0 and found.budgets[0].reserved == 0, "nothing runs: nothing reserved"
    assert limits.look(key).budgets[0].spent == pytest.approx(0.0021), "the key pays for both"


def test_a_refused_end_user_is_told_whose_limit_it_is() -> None:
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    key = ClientKey("", "app", users=EndUserLimits(rpm=1))
    alice = user_of(key, "alice")
    admit(limits, alice, 1)
    with pytest.raises(ApiError) as refused:
        admit(limits, alice, 1)
    error = refused.value
    assert error.error_code == "rate_limited" and error.retry_after == pytest.approx(60.0)
    said = "The end user 'alice' of the key 'app' is at its limit of 1 requests in the last minute (user_rpm)."
    assert error.detail == said


def test_end_users_in_memory_are_bounded_the_least_recently_seen_forgotten(monkeypatch) -> None:
    monkeypatch.setattr(memory, "MAX_END_USERS", 3)
    counters = MemoryCounters(Clock())
    key = ClientKey("", "app", users=EndUserLimits(rpm=1))
    for name in ("a", "b", "c"):
        count(counters, user_of(key, name), name, 1)
    assert count(counters, user_of(key, "a"), "a2", 1).refused == "user_rpm", "a seen again"
    count(counters, user_of(key, "d"), "d", 1)  # b, the least recently seen, goes
    assert len(counters._users) == 3
    assert count(counters, user_of(key, "b"), "b2", 1).refused is None, "b was forgotten"
    assert count(counters, user_of(key, "a"), "a3", 1).refused == "user_rpm", "a was kept"


def test_a_reload_hands_end_users_counts_over_with_the_keys() -> None:
    first, second = MemoryCounters(Clock()), MemoryCounters(Clock())
    key = ClientKey("", "app", rpm=10, users=EndUserLimits(rpm=1))
    count(first, user_of(key, "alice"), "a", 1)
    second.merge(first.snapshot())
    assert count(second, user_of(key, "alice"), "a2", 1).refused == "user_rpm"
    assert second.peek(key).requests.remaining == 9


def test_an_end_user_the_logs_would_scrub_is_logged_by_its_digest(client, caplog) -> None:
    import hashlib
    import logging

    import httpx
    import respx

    from ..conftest import UNIT_UPSTREAM
    from ..sse import upstream_reply

    with respx.mock(using="httpx", assert_all_called=False) as router, caplog.at_level(logging.INFO):
        router.post(f"{UNIT_UPSTREAM}/chat/completions").mock(
            side_effect=lambda request: httpx.Response(200, content=upstream_reply("Hi"))
        )
        for user in ("alice@example.com", "user-4711"):
            answer = client.post("/v1/chat/wait", json={"message": "hi", "user": user})
            assert answer.status_code == 200, answer.get_json()
    said = [r.end_user for r in caplog.records if r.getMessage() == "request_completed" and hasattr(r, "end_user")]
    assert said == ["sha256:" + hashlib.sha256(b"alice@example.com").hexdigest()[:16], "user-4711"]
