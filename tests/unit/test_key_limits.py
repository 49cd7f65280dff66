"""Client keys with names and limits: the key file's lines, the sliding minute, the memory
counters, and the Limits façade (refusals, token counting, failing open or closed, headers)."""

from __future__ import annotations

import pytest

from app.accounts.payer import Payer
from app.config import ClientKey, ConfigError, load_settings
from app.errors import ApiError
from app.limits import Closing, CountersUnavailable, Limits, MemoryCounters, duration, headers
from app.limits.window import Minute
from app.metrics.catalogue import NoMetrics
from app.service.keys import ClientKeys

from ..payers import admit, count

BASE = {"OPENAI_API_KEY": "sk-test"}
KEY = "k" * 16


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _file(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "keys"
    path.write_text(text, encoding="utf-8")
    return {**BASE, "CHATWAIT_API_KEYS_FILE": str(path)}


def test_key_file_lines_give_names_and_limits_and_the_defaults_fill_in(tmp_path) -> None:
    env = _file(tmp_path, f"# comment\n{KEY}a name=web max_streams=2 rpm=5\n{KEY}b tpm=900\n\n{KEY}c\n")
    env |= {"KEY_REQUESTS_PER_MINUTE": "60", "CHATWAIT_API_KEYS": f"{KEY}c,{KEY}d"}
    keys = {entry.key: entry for entry in load_settings(environ=env).keys}
    assert (keys[f"{KEY}a"].name, keys[f"{KEY}a"].max_streams, keys[f"{KEY}a"].rpm, keys[f"{KEY}a"].tpm) == (
        "web",
        2,
        5,
        None,
    )
    assert keys[f"{KEY}b"].name.startswith("key-") and keys[f"{KEY}b"].tpm == 900 and keys[f"{KEY}b"].rpm == 60
    assert keys[f"{KEY}c"].rpm == 60 and keys[f"{KEY}d"].rpm == 60 and not keys[f"{KEY}c"].max_streams
    assert keys[f"{KEY}b"].name == ClientKeys([keys[f"{KEY}b"]]).identify(f"Bearer {KEY}b")[1].name
    assert load_settings(environ={**BASE, "CHATWAIT_API_KEYS": KEY}).keys[0].limited is False


def test_max_sockets_is_a_key_field_with_its_default(tmp_path) -> None:
    env = _file(tmp_path, f"{KEY}a max_sockets=3\n{KEY}b\n") | {"KEY_MAX_SOCKETS": "8"}
    keys = {entry.key: entry for entry in load_settings(environ=env).keys}
    assert (keys[f"{KEY}a"].max_sockets, keys[f"{KEY}b"].max_sockets) == (3, 8)
    assert not keys[f"{KEY}b"].limited and keys[f"{KEY}b"].max_streams is None, "sockets alone: no generation counted"
    default = {entry.key: entry for entry in load_settings(environ=_file(tmp_path, f"{KEY}c\n")).keys}
    assert default[f"{KEY}c"].max_sockets == 64, "a default that fits the worker's bound on sockets' chains"


@pytest.mark.parametrize(
    "line,words",
    [
        (f"{KEY} rpm=0", "line 2: rpm='0' is not valid"),
        (f"{KEY} rpm=five", "line 2: rpm='five' is not valid"),
        (f"{KEY} tpm=1000000001", "whole number from 1 to"),
        (f"{KEY} burst=3", "line 2: 'burst' is not a field"),
        (f"{KEY} max_sockets=0", "line 2: max_sockets='0' is not valid"),
        (f"{KEY} {KEY}x", "line 2: a word is not a field"),
        (f"{KEY} rpm=1 rpm=2", "rpm is given twice"),
        (f"{KEY} name=-web", "name must be"),
        ("short name=web", "line 2 is not valid"),
    ],
)
def test_a_bad_line_names_its_line_and_field_never_the_key(tmp_path, line: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=_file(tmp_path, f"# keys\n{line}\n"))
    assert "CHATWAIT_API_KEYS_FILE" in str(raised.value) and words in str(raised.value)
    assert KEY not in str(raised.value)


def test_two_keys_under_one_name_or_one_key_twice_stop_the_start(tmp_path) -> None:
    with pytest.raises(ConfigError, match="two keys are named 'web'"):
        load_settings(environ=_file(tmp_path, f"{KEY}a name=web\n{KEY}b name=web\n"))
    with pytest.raises(ConfigError, match="listed twice") as raised:
        load_settings(environ=_file(tmp_path, f"{KEY}a\n{KEY}a rpm=3\n"))
    assert KEY not in str(raised.value)


def test_the_failure_mode_and_the_wait_are_settings() -> None:
    settings = load_settings(environ={**BASE, "KEY_LIMITS_WITHOUT_REDIS": "closed", "ADMISSION_WAIT_SECONDS": "2.5"})
    assert settings.access.key_limits_without_redis == "closed" and settings.access.admission_wait_seconds == 2.5
    bad = (("KEY_LIMITS_WITHOUT_REDIS", "maybe"), ("ADMISSION_WAIT_SECONDS", "301"), ("KEY_MAX_STREAMS", "0"))
    for name, raw in bad:
        with pytest.raises(ConfigError, match=name):
            load_settings(environ={**BASE, name: raw})


def test_the_minute_slides_second_by_second() -> None:
    minute = Minute()
    minute.add(100.2, 3)
    minute.add(100.9, 2)
    minute.add(130.0, 4)
    assert minute.total(130.5) == 9
    assert minute.reset_after(130.5) == pytest.approx(29.5)
    assert minute.free_after(130.5, 1, 9) == pytest.approx(29.5), "the 5 of second 100 leave at 160"
    assert minute.free_after(130.5, 5, 9) == pytest.approx(29.5), "4 left and 5 more make 9"
    assert minute.free_after(130.5, 6, 9) == pytest.approx(59.5), "room for 6 once second 130 leaves too"
    assert minute.free_after(130.5, 0, 9) == 0.0
    assert minute.total(160.0) == 4 and minute.total(190.0) == 0 and minute.reset_after(190.0) == 0.0
    for second in range(1_000):
        minute.add(200 + second / 10, 1)
    assert len(minute._buckets) <= 61


def _admit(counters: MemoryCounters, key: ClientKey, name: str, prompt: int = 0):
    return count(counters, key, name, prompt)


def test_memory_counters_refuse_in_order_and_count_only_what_they_admit() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    key = ClientKey("", "web", max_streams=2, rpm=3, tpm=100)
    first = _admit(counters, key, "t1", 10)
    assert first.refused is None and first.requests.remaining == 2 and first.tokens.remaining == 90
    assert first.streams == (2, 1)
    _admit(counters, key, "t2", 10)
    refused = _admit(counters, key, "t3", 10)
    assert (refused.refused, refused.retry_after) == ("max_streams", 1.0) and refused.requests.remaining == 1
    counters.release(Closing(Payer(key), "t1"))
    assert _admit(counters, key, "t3", 10).refused is None
    counters.release(Closing(Payer(key), "t2"))
    counters.release(Closing(Payer(key), "t3"))
    clock.now += 10
    at_rpm = _admit(counters, key, "t4", 10)
    assert at_rpm.refused == "rpm" and at_rpm.retry_after == pytest.approx(50.0)
    clock.now += 51
    counters.spend([(Payer(key), 95)])
    at_tpm = _admit(counters, key, "t5", 10)
    assert at_tpm.refused == "tpm" and at_tpm.tokens.remaining == 5 and at_tpm.retry_after == pytest.approx(60.0)
    other = ClientKey("", "other", rpm=1)
    assert _admit(counters, other, "t6").refused is None, "each key counts on its own"


def test_a_prompt_alone_over_tpm_is_admitted_when_nothing_was_spent() -> None:
    counters = MemoryCounters(Clock())
    key = ClientKey("", "web", tpm=50)
    assert _admit(counters, key, "t1", 80).refused is None
    assert _admit(counters, key, "t2", 1).refused == "tpm"


class Failing:
    """Counters whose store is out of reach."""

    def admit(self, *_):
        raise CountersUnavailable("down")

    peek = spend = release = renew = hold = let_go = admit

    def reachable(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_limits_refuse_with_rate_limited_and_count_completion_tokens() -> None:
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    key = ClientKey("", "web", max_streams=1, tpm=100)
    ticket, verdict = admit(limits, key, 20)
    assert verdict.tokens.remaining == 80
    with pytest.raises(ApiError) as raised:
        admit(limits, key, 5)
    assert raised.value.error_code == "rate_limited" and raised.value.retry_after == 1.0
    assert "'web'" in raised.value.detail and "(max_streams)" in raised.value.detail
    ticket.progress = lambda: 30
    limits._spend([(ticket, ticket.progress())])
    assert limits.look(key).tokens.remaining == 50
    limits.end(ticket, 45)  # usage settles the difference
    assert limits.look(key).tokens.remaining == 35 and limits.look(key).streams == (1, 0)
    limits.end(ticket, 45)
    assert limits.look(key).tokens.remaining == 35, "an ending counts once"


def test_a_keys_sockets_are_counted_while_open_and_refused_past_max_sockets() -> None:
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    key = ClientKey("", "web", max_sockets=1)
    assert limits.open_socket(ClientKey("", "open")) is None, "no max_sockets: nothing counted"
    first = limits.open_socket(key)
    with pytest.raises(ApiError) as raised:
        limits.open_socket(key)
    assert raised.value.error_code == "rate_limited" and raised.value.retry_after == 1.0
    assert "'web' is at its limit of 1 WebSockets open at once (max_sockets)" in raised.value.detail
    limits.close_socket(first)
    limits.close_socket(first)  # once only
    limits.close_socket(None)
    assert limits.open_socket(key) is not None
    assert Limits(Failing(), NoMetrics(), fail_open=True).open_socket(key) is None, "out of reach, open: not counted"
    with pytest.raises(ApiError) as unreached:
        Limits(Failing(), NoMetrics(), fail_open=False).open_socket(key)
    assert unreached.value.error_code == "store_unavailable"


def test_limits_fail_open_or_closed_when_the_counters_are_out_of_reach() -> None:
    key = ClientKey("", "web", rpm=1)
    opened = Limits(Failing(), NoMetrics(), fail_open=True)
    ticket, verdict = admit(opened, key, 0)
    assert verdict is None and opened.look(key) is None and headers(None) == {}
    opened.end(ticket, 3)  # nothing to end: never raises
    assert opened.check(shared=True) == {"ok": True, "detail": opened.check(shared=True)["detail"]}
    closed = Limits(Failing(), NoMetrics(), fail_open=False)
    with pytest.raises(ApiError) as raised:
        admit(closed, key, 0)
    assert raised.value.error_code == "store_unavailable"
    assert closed.check(shared=True)["ok"] is False and "closed" in closed.check(shared=True)["detail"]


def test_headers_are_openais_with_durations() -> None:
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    _, verdict = admit(limits, ClientKey("", "web", max_streams=3, rpm=10, tpm=1000), 100)
    assert headers(verdict) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "1m0s",
        "x-ratelimit-limit-streams": "3",
        "x-ratelimit-remaining-streams": "2",
    }
    assert [duration(s) for s in (0.0, 0.25, 1.0, 12.2, 59.5, 60.0, 63.0)] == [
        "0ms",
        "250ms",
        "1s",
        "13s",
        "1m0s",
        "1m0s",
        "1m3s",
    ]


def test_tpm_reserves_max_tokens_so_a_burst_stays_within_it() -> None:
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    key = ClientKey("", "web", tpm=500)
    admitted = []
    for _ in range(12):  # twelve at once: none has produced a token yet
        try:
            admitted.append(admit(limits, key, 10, 200)[0])
        except ApiError as refused:
            assert refused.error_code == "rate_limited" and "(tpm)" in refused.detail
    assert [ticket.reserved for ticket in admitted] == [200, 200, 70], "the third gets what is left: 500 - 420 - 10"
    assert limits.look(key).tokens.remaining == 0


def test_a_reservation_is_lowered_to_what_tpm_has_left() -> None:
    """MAX_TOKENS=32000 and tpm=20000: after a small request, a big one is admitted with what is
    left (its call asks for no more), not refused for a minute (the Redis script does the same:
    tests/integration/test_key_limits_redis.py)."""
    limits = Limits(MemoryCounters(Clock()), NoMetrics())
    key = ClientKey("", "big", tpm=20_000)
    first, _ = admit(limits, key, 23, 32_000)
    assert first.reserved == 32_000, "alone past tpm with nothing counted: admitted whole"
    limits.end(first, 10)
    second, verdict = admit(limits, key, 23, 32_000)
    assert second.reserved == 20_000 - 33 - 23 and verdict.tokens.remaining == 0


def test_the_end_takes_back_what_was_reserved_and_not_produced() -> None:
    clock = Clock()
    limits = Limits(MemoryCounters(clock), NoMetrics())
    key = ClientKey("", "web", tpm=1000)
    short, _ = admit(limits, key, 10, 400)
    clock.now += 5
    long, _ = admit(limits, key, 10, 100)
    assert limits.look(key).tokens.remaining == 480
    limits.end(short, 5)  # 395 of its reservation come back
    assert limits.look(key).tokens.remaining == 875
    long.progress = lambda: 150
    limits._spend([(long, long.progress())])  # past its reservation: the 50 more count as they come
    assert limits.look(key).tokens.remaining == 825
    limits.end(long, 140)  # usage says fewer than the chunks: back to what it produced
    assert limits.look(key).tokens.remaining == 835
    unlimited = ClientKey("", "free", rpm=100)
    ticket, _ = admit(limits, unlimited, 10, 400)
    assert ticket.reserved == 0, "nothing is reserved for a key without tpm"


def test_a_refund_after_the_window_moved_on_takes_nothing() -> None:
    clock = Clock()
    counters = MemoryCounters(clock)
    key = ClientKey("", "web", tpm=1000)
    verdict = count(counters, key, "t1", 300)
    clock.now += 61
    count(counters, key, "t2", 100)
    counters.release(Closing(Payer(key), "t1", refund=290, second=verdict.second))
    assert counters.peek(key).tokens.remaining == 900


def test_limit_headers_replace_their_names_in_any_case_and_add_the_rest() -> None:
    """The x-ratelimit-* headers go on a response as werkzeug's `update` would put them."""
    from werkzeug.datastructures import Headers

    from app.http.auth import _replace

    found = {"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "4"}
    ours, werkzeugs = (Headers([("Content-Type", "text/plain"), ("X-RateLimit-Limit-Requests", "9")]) for _ in "ab")
    _replace(ours, found)
    werkzeugs.update(found)
    assert list(ours.items()) == list(werkzeugs.items())
    assert ours.getlist("x-ratelimit-limit-requests") == ["5"] and ours["X-Ratelimit-Remaining-Requests"] == "4"
