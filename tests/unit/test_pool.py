"""The pool of model servers: routing (least outstanding, weighted, ties at random), passive
health (rest with backoff or Retry-After, one probe after a rest), failover before the first token."""

from __future__ import annotations

import collections
import itertools

import gevent
import pytest

from app.accounts.account import Account, Origin
from app.config import load_settings
from app.errors import ApiError
from app.generation import opening
from app.generation.relay import Relay
from app.metrics.catalogue import NoMetrics
from app.providers.base import ENDED_EARLY, FirstTokenDeadline, UpstreamError
from app.providers.call import Route
from app.providers.pool import UpstreamPool
from app.providers.pool.room import RoomQueue

from .test_relay import CALL, Recorder, ScriptedAttempt, ScriptedProvider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pool(urls: str = "http://a/v1,http://b/v1", rest: str = "2", **env: str):
    settings = load_settings(
        environ={"OPENAI_BASE_URL": urls, "OPENAI_MODEL": "m", "UPSTREAM_REST_SECONDS": rest, **env}
    )
    providers: dict[str, ScriptedProvider] = {}

    def connect(_settings, server):
        providers[server.name] = ScriptedProvider()
        return providers[server.name]

    clock = Clock()
    return UpstreamPool(settings, NoMetrics(), clock, connect), providers, clock


def _ok(*pieces: str) -> ScriptedAttempt:
    return ScriptedAttempt(list(pieces or ("hi",)))


def _open(pool: UpstreamPool, route: Route | None = None):
    generation = pool.open(CALL, None, route or pool.route(CALL.model))
    return generation, list(generation)


def test_least_outstanding_first_and_ties_at_random() -> None:
    pool, providers, _ = _pool()
    for provider in providers.values():
        provider.script = [_ok() for _ in range(200)]
    held = pool.open(CALL, None, Route("a"))  # one generation open on a
    assert {pool.route(CALL.model).server for _ in range(50)} == {"b"}
    held.close()
    firsts = collections.Counter(pool.route(CALL.model).server for _ in range(400))
    assert set(firsts) == {"a", "b"} and min(firsts.values()) > 120  # not herded onto one


def test_a_pooled_attempt_is_finished_and_stopped_through_to_its_servers() -> None:
    """What a capped continuation does to the attempt it reads (`rescue.capped`), through the pool."""
    pool, providers, _ = _pool()
    providers["a"].script = [_ok("x ", "y ")]
    generation = pool.open(CALL, None, Route("a"))
    assert next(iter(generation)) == "x "
    generation.finish("length")
    generation.stop()
    assert generation.finish_reason == "length" and providers["a"].opened[0].stopped
    assert all(server.outstanding == 0 for server in pool.servers), "its slot is free"


def test_weights_share_open_generations(tmp_path) -> None:
    listing = tmp_path / "u.toml"
    listing.write_text(
        '[[upstream]]\nname="big"\nurl="http://a/v1"\nweight=3\n[[upstream]]\nname="small"\nurl="http://b/v1"\n'
    )
    pool, providers, _ = _pool(urls="", UPSTREAMS_FILE=str(listing))
    for provider in providers.values():
        provider.script = [_ok() for _ in range(40)]
    opened = [pool.open(CALL, None, pool.route(CALL.model)) for _ in range(40)]
    counts = collections.Counter(s.name for s in pool.servers for _ in range(s.outstanding))
    assert counts == {"big": 30, "small": 10}
    for generation in opened:
        generation.close()
    assert all(server.outstanding == 0 for server in pool.servers)


def test_a_failure_rests_the_server_and_fails_over_at_once() -> None:
    pool, providers, clock = _pool()
    providers["a"].script = [UpstreamError("upstream_unavailable", "down", upstream_status=503)]
    providers["b"].script = [_ok("x", "y")]
    route = Route("a")
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, route)
    assert pool.can_fail_over(CALL.model, route)
    assert pool.servers[0].health.state == "resting" and pool.servers[0].health.rest_until == clock.now + 2
    _, pieces = _open(pool, route)
    assert pieces == ["x", "y"] and route.server == "b" and route.tried == {"a", "b"}
    assert {pool.route(CALL.model).server for _ in range(20)} == {"b"}  # a rests


def test_the_relay_retries_on_another_server_and_names_it(caplog) -> None:
    pool, providers, _ = _pool()
    providers["a"].script = [UpstreamError("upstream_unavailable", "refused")]
    providers["b"].script = [_ok("one ", "two")]
    settings = load_settings(environ={"OPENAI_BASE_URL": "http://a/v1", "UPSTREAM_RETRIES": "1"})
    recorder = Recorder()
    with caplog.at_level("DEBUG"):  # stream_started is a DEBUG line
        account = Account(CALL, 3, Origin("cid"), Route("a"))
        outcome = Relay(pool, settings, account, recorder, metrics=NoMetrics()).run()
    assert outcome.error is None and outcome.text == "one two"
    started = next(r for r in caplog.records if r.msg == "stream_started")
    retried = next(r for r in caplog.records if r.msg == "upstream_retry")
    completed = next(r for r in caplog.records if r.msg == "stream_completed")
    assert (started.upstream_server, retried.upstream_server, completed.upstream_server) == ("a", "a", "b")
    assert retried.delay_ms == 0  # another server: no backoff


def test_a_429_rests_for_its_retry_after_and_backoff_doubles_otherwise() -> None:
    pool, providers, clock = _pool()
    a = pool.servers[0]
    providers["a"].script = [UpstreamError("upstream_rate_limited", "slow", retry_after=7.0, upstream_status=429)]
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route("a"))
    assert a.health.rest_until == clock.now + 7
    clock.now += 7
    providers["a"].script = [UpstreamError("upstream_unavailable", "down"), UpstreamError("upstream_unavailable", "x")]
    with pytest.raises(UpstreamError):  # the probe fails: the second rest is twice the first
        pool.open(CALL, None, Route("a"))
    assert a.health.rest_until == clock.now + 4
    clock.now += 4
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route("a"))
    assert a.health.rest_until == clock.now + 8


def test_after_its_rest_one_request_probes_the_server_then_it_takes_its_share() -> None:
    pool, providers, clock = _pool()
    a = pool.servers[0]
    providers["a"].script = [UpstreamError("upstream_unavailable", "down"), _ok()]
    providers["b"].script = [_ok() for _ in range(10)]
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route("a"))
    clock.now += 2
    probe = pool.open(CALL, None, Route("a"))
    assert a.health.state == "probing"
    assert {pool.route(CALL.model).server for _ in range(20)} == {"b"}  # one probe at a time
    assert list(probe) == ["hi"] and a.health.state == "healthy" and a.health.rests == 0
    probe.close()
    assert "a" in {pool.route(CALL.model).server for _ in range(50)}


def test_a_probe_cancelled_before_its_first_token_lets_another_probe() -> None:
    pool, providers, clock = _pool()
    providers["a"].script = [UpstreamError("upstream_unavailable", "down"), _ok()]
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route("a"))
    clock.now += 2
    pool.open(CALL, None, Route("a")).close()  # cancelled: no verdict
    assert pool.servers[0].health.usable(clock.now)


def test_no_first_token_in_time_rests_the_server_but_a_rejection_does_not() -> None:
    pool, providers, _ = _pool()
    providers["a"].script = [ScriptedAttempt([FirstTokenDeadline()])]
    generation = pool.open(CALL, None, Route("a"))
    with pytest.raises(FirstTokenDeadline):
        list(generation)
    assert pool.servers[0].health.state == "resting"
    providers["b"].script = [UpstreamError("upstream_auth_failed", "401", upstream_status=401)]
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route("b"))
    assert pool.servers[1].health.state == "healthy"


def test_a_failure_after_the_first_token_rests_the_server_without_failover() -> None:
    pool, providers, _ = _pool()
    providers["a"].script = [ScriptedAttempt(["x", UpstreamError("upstream_unavailable", "reset")])]
    generation = pool.open(CALL, None, Route("a"))
    pieces = iter(generation)
    assert next(pieces) == "x"
    with pytest.raises(UpstreamError):
        next(pieces)
    assert pool.servers[0].health.state == "resting"


def test_a_reply_ended_without_a_finish_reason_is_preemption_not_sickness() -> None:
    pool, providers, _ = _pool()
    early = UpstreamError("upstream_interrupted", "no finish", log_fields={"upstream_ended": ENDED_EARLY})
    providers["a"].script = [ScriptedAttempt(["x", early])]
    with pytest.raises(UpstreamError), pool.open(CALL, None, Route("a")) as generation:
        list(generation)
    assert pool.servers[0].health.state == "healthy", "llama.cpp ends a preempted request so: the server is busy"
    providers["a"].script = [ScriptedAttempt(["x", UpstreamError("upstream_interrupted", "cut")])]
    with pytest.raises(UpstreamError), pool.open(CALL, None, Route("a")) as generation:
        list(generation)
    assert pool.servers[0].health.state == "resting", "a reply cut off still rests it"


def test_every_server_resting_is_503_with_the_soonest_rest_end() -> None:
    pool, providers, clock = _pool()
    providers["a"].script = [UpstreamError("upstream_unavailable", "down")]
    providers["b"].script = [UpstreamError("upstream_rate_limited", "slow", retry_after=30.0)]
    route = Route("a")
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, route)
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, route)
    assert not pool.can_fail_over(CALL.model, route)
    with pytest.raises(ApiError) as refused:
        pool.route(CALL.model)
    assert refused.value.error_code == "upstream_unavailable" and refused.value.retry_after == 2
    with pytest.raises(UpstreamError) as inside:
        pool.open(CALL, None, route)
    assert inside.value.error_code == "upstream_unavailable" and inside.value.retry_after == 2
    clock.now += 2
    assert pool.route(CALL.model).server == "a"


def _with_fallback(tmp_path, *extra: str):
    listing = tmp_path / "u.toml"
    servers = '[[upstream]]\nname="a"\nurl="http://a/v1"\nmodels=["m"]\n[[upstream]]\nname="b"\nurl="http://b/v1"\nmodels=["f"]\n'
    listing.write_text(servers + '[fallbacks]\nm = ["f"]\n' + "".join(extra))
    return _pool(urls="", UPSTREAMS_FILE=str(listing), ALLOWED_MODELS="m,f")


def test_a_lone_server_with_a_fallback_rests_after_failures_of_distinct_requests(tmp_path) -> None:
    pool, providers, clock = _with_fallback(tmp_path)
    down = UpstreamError("upstream_unavailable", "down")
    providers["a"].script = [down, down, down, _ok(), down, down, down, _ok()]
    route = pool.route(CALL.model)
    for _ in range(3):  # one request and its retries: evidence of one request only
        with pytest.raises(UpstreamError):
            pool.open(CALL, None, route)
    assert pool.servers[0].health.state == "healthy"
    assert _open(pool)[1] == ["hi"]
    for _ in range(3):  # UPSTREAM_BREAKER_FAILURES (3) requests in a row fail: the breaker opens
        with pytest.raises(UpstreamError):
            pool.open(CALL, None, Route())
    assert pool.servers[0].health.state == "resting"
    with pytest.raises(ApiError) as refused:
        pool.route(CALL.model)
    assert refused.value.retry_after == 2, "refused at once for the rest, no request sent (the fallback answers)"
    clock.now += 2
    assert _open(pool)[1] == ["hi"] and pool.servers[0].health.state == "healthy"  # the probe closes it


def _probe_times(pool, providers, clock, down_for: float, every: float = 1.0) -> tuple[list[float], float]:
    """A request every `every` seconds to a model whose lone server is down for `down_for`
    seconds: when the server was tried while down, and how long after its recovery it answered."""
    started, tried = clock.now, []

    def answer() -> object:
        tried.append(clock.now - started)
        if clock.now - started < down_for:
            return UpstreamError("upstream_unavailable", "down")
        return _ok()

    while True:
        try:
            route = pool.route(CALL.model)
        except ApiError:
            route = None  # resting: the fallback answers
        if route is not None:
            providers["a"].script = [answer()]
            try:
                _open(pool, route)
                return tried, clock.now - started - down_for
            except UpstreamError:
                pass
        clock.now += every
        assert clock.now - started < down_for + 600


@pytest.mark.parametrize("down_for", [60.0, 300.0])
def test_a_server_back_from_a_long_outage_is_used_again_within_30_seconds(tmp_path, down_for: float) -> None:
    """Failover Bench S15 (a primary down 60 s, its fallback answering): rests double up to
    REST_CEILING_SECONDS, so the first try after the recovery comes within it, however long the
    outage; default settings."""
    pool, providers, clock = _with_fallback(tmp_path)
    pool.servers[0].health.rest_seconds = 5.0  # UPSTREAM_REST_SECONDS's default
    tried, back_after = _probe_times(pool, providers, clock, down_for)
    assert back_after <= 15.0, f"used again {back_after:.0f} s after its recovery (tried at {tried})"
    gaps = [later - earlier for earlier, later in itertools.pairwise(tried[2:])]  # after the breaker opened
    assert max(gaps) <= 15.0 and gaps[:2] == [5.0, 10.0], f"rests of 5, 10, then 15 s at most: {gaps}"


def test_a_new_outage_after_a_quiet_spell_starts_its_rests_over(tmp_path) -> None:
    pool, providers, clock = _with_fallback(tmp_path)
    pool.servers[0].health.rest_seconds = 5.0
    _probe_times(pool, providers, clock, 60.0)
    assert pool.servers[0].health.rests == 0, "a success ends the streak"
    health = pool.servers[0].health
    down = UpstreamError("upstream_unavailable", "down")
    providers["a"].script = [down] * 12
    for _ in range(3):
        with pytest.raises(UpstreamError):
            pool.open(CALL, None, Route())
    assert health.rest_until == clock.now + 5
    clock.now += 5  # the probe fails: 10 s
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, pool.route(CALL.model))
    assert health.rest_until == clock.now + 10
    clock.now += 10 + 120  # nobody asks for two minutes; then the next probe fails: a new outage, 5 s
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, pool.route(CALL.model))
    assert health.rest_until == clock.now + 5


def test_a_lone_route_is_never_shut_by_one_request_and_sheds_in_proportion_to_failures() -> None:
    pool, providers, clock = _pool(urls="http://a/v1")
    down = UpstreamError("upstream_unavailable", "down")
    providers["a"].script = [down, down, down, _ok()]
    route = pool.route(CALL.model)
    for _ in range(3):  # one request failing on every attempt
        with pytest.raises(UpstreamError):
            pool.open(CALL, None, route)
    assert _open(pool)[1] == ["hi"], "the next request (another client) is served"
    providers["a"].script = [down for _ in range(1000)]
    refused = sent = 0
    for _ in range(300):  # a hard-down server, 10 requests a second for 30 s
        clock.now += 0.1
        try:
            route = pool.route(CALL.model)
        except ApiError as shed:
            assert shed.error_code == "upstream_unavailable" and 1 <= shed.retry_after <= 5
            refused += 1
            continue
        sent += 1
        with pytest.raises(UpstreamError):
            pool.open(CALL, None, route)
    assert pool.servers[0].health.state == "healthy", "never rested: shed"
    assert sent <= 30 and refused >= 270, (sent, refused)  # about one request a second still tries it
    assert pool.describe()["servers"][0]["shed"] > 0.9
    providers["a"].script = [_ok() for _ in range(1000)]
    served_at = None
    for step in range(400):  # it recovers: tried within seconds, back to every request within the window
        clock.now += 0.1
        try:
            _open(pool)
        except ApiError:
            continue
        served_at = served_at if served_at is not None else step
    assert served_at is not None and served_at <= 60, "tried again within PROBE_SECONDS of its recovery"
    assert pool.describe()["servers"][0]["shed"] == 0.0, "all of the traffic back within the window (30 s)"


def test_a_lone_server_rate_limiting_is_a_rate_limit_for_the_requests_shed() -> None:
    pool, providers, clock = _pool(urls="http://a/v1")
    limited = UpstreamError("upstream_rate_limited", "slow down", upstream_status=429, retry_after=20.0)
    providers["a"].script = [limited for _ in range(10)]
    for _ in range(3):
        clock.now += 0.01
        with pytest.raises(UpstreamError):
            pool.open(CALL, None, Route())
    answers = []
    for _ in range(20):
        clock.now += 0.01
        try:
            pool.route(CALL.model)
        except ApiError as shed:
            answers.append((shed.error_code, shed.status, round(shed.retry_after)))
    assert answers and set(answers) == {("upstream_rate_limited", 429, 20)}


def test_upstream_breaker_failures_zero_never_rests_a_lone_server() -> None:
    pool, providers, _ = _pool(urls="http://a/v1", UPSTREAM_BREAKER_FAILURES="0")
    providers["a"].script = [UpstreamError("upstream_unavailable", "down") for _ in range(5)]
    for _ in range(5):
        with pytest.raises(UpstreamError):
            pool.open(CALL, None, Route())
    assert pool.servers[0].health.state == "healthy"


def test_ready_lists_every_server_and_passes_while_each_model_has_a_healthy_one() -> None:
    pool, providers, _ = _pool()
    providers["a"].script = [UpstreamError("upstream_unavailable", "down")]
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route("a"))
    ok, detail = pool.check()
    assert ok and detail == "Ready, degraded (m: degraded): see `routes`."
    described = pool.describe()
    states = [(s["name"], s["state"], s["rest_seconds"]) for s in described["servers"]]
    assert states == [("a", "resting", 2.0), ("b", "healthy", 0)]
    pool.servers[1].checked = (False, "GET /models answered HTTP 401: check its key.")
    failing = pool.describe()["servers"][1]
    assert (failing["state"], failing["ok"]) == ("failing", False), "state and ok tell one story (issue 82)"
    assert described["routes"] == [
        {
            "model": "m",
            "state": "degraded",
            "servers": ["b"],
            "fallback": None,
            "detail": "Of m's servers, a does not answer.",
        }
    ]
    providers["b"].check = lambda: (False, "http://b (set by OPENAI_BASE_URL (item 2)): it is down.")
    ok, detail = pool.check()
    assert not ok and detail.startswith("No route answers the default model: No server of m answers")
    assert detail.endswith("http://b (set by OPENAI_BASE_URL (item 2)): it is down.")  # why, and where to look


def test_ready_while_a_fallback_answers_for_the_default_model_with_the_route_named(tmp_path) -> None:
    pool, providers, _ = _with_fallback(tmp_path)
    providers["a"].check = lambda: (False, "http://a (set by the url of UPSTREAMS_FILE entry 1 (a)): down.")
    ok, detail = pool.check()
    assert ok and detail == "Ready, degraded (m: degraded): see `routes`."
    routes = {route["model"]: route for route in pool.describe()["routes"]}
    assert routes["m"] == {
        "model": "m",
        "state": "degraded",
        "servers": ["b"],
        "fallback": "f",
        "detail": "No server of m answers: its fallback f answers its requests.",
    }
    assert routes["f"]["state"] == "serving"
    providers["b"].check = lambda: (False, "down too")
    ok, detail = pool.check()
    assert not ok and "No server of m answers, nor one of a fallback model" in detail
    assert [route["state"] for route in pool.describe()["routes"]] == ["down", "down"]


def test_a_non_default_model_without_a_route_is_named_and_the_service_stays_ready(tmp_path) -> None:
    pool, providers, _ = _with_fallback(tmp_path)
    providers["b"].check = lambda: (False, "down")
    ok, detail = pool.check()
    assert ok and detail == "Ready, degraded (f: down): see `routes`."


def test_a_model_its_server_does_not_list_is_not_ready_and_named(tmp_path) -> None:
    pool, providers, _ = _with_fallback(tmp_path)
    providers["a"].listed_models = lambda: frozenset(("n", "other"))  # "m" is a typo of "n"
    providers["b"].listed_models = lambda: frozenset(("f-20250101",))  # "f" is an alias of a dated one
    ok, detail = pool.check()
    assert not ok and detail == "'m' is not in the models listed by a (GET /models): check the name."
    routes = {route["model"]: route["state"] for route in pool.describe()["routes"]}
    assert routes == {"m": "unlisted", "f": "serving"}
    providers["a"].listed_models = lambda: None  # a list it cannot judge by: nothing judged
    assert pool.check() == (True, "Every allowed model has a server that answers.")


def test_ready_check_models_false_judges_no_name(tmp_path) -> None:
    listing = tmp_path / "u.toml"
    listing.write_text('[[upstream]]\nname="a"\nurl="http://a/v1"\nmodels=["m"]\n')
    pool, providers, _ = _pool(urls="", UPSTREAMS_FILE=str(listing), READY_CHECK_MODELS="false")
    providers["a"].listed_models = lambda: frozenset(("n",))
    assert pool.check()[0] and pool.describe()["routes"][0]["state"] == "serving"


def test_with_upstream_attempt_seconds_a_silent_server_costs_the_attempt_not_the_request() -> None:
    pool, providers, _ = _pool(UPSTREAM_ATTEMPT_SECONDS="0.2", TIMEOUT_SECONDS="5")
    providers["a"].script = [ScriptedAttempt(["late"], delay=3)]
    providers["b"].script = [_ok("on ", "time")]
    relay = Relay(pool, pool.settings, Account(CALL, 3, Origin("cid"), Route("a")), Recorder(), metrics=NoMetrics())
    outcome = relay.run()
    assert outcome.error is None and outcome.text == "on time" and relay.route.server == "b"
    assert pool.servers[0].health.state == "resting" and pool.servers[0].outstanding == 0


def test_a_server_that_preempts_takes_one_request_at_a_time_and_others_wait() -> None:
    pool, providers, _ = _pool(urls="http://a/v1")
    preempted = UpstreamError("upstream_interrupted", "early", log_fields={"upstream_ended": ENDED_EARLY})
    providers["a"].script = [preempted, _ok("held"), preempted, _ok("one"), _ok("two")]
    server = pool.servers[0]
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route())
    assert server.slots is None, "alone on it, a request ended early says nothing of our load"
    held = pool.open(CALL, None, Route())
    with pytest.raises(UpstreamError):
        pool.open(CALL, None, Route())
    held.close()
    assert server.slots == 1 and server.health.state == "healthy", "preempted beside another of ours: busy"
    first = pool.open(CALL, None, Route())
    waiting = gevent.spawn(pool.open, CALL, None, Route())
    gevent.sleep(0.01)
    assert not waiting.ready() and server.outstanding == 1, "no second request while one is open"
    first.close()
    assert list(waiting.get(timeout=1)) == ["two"]


def test_a_request_ended_early_beside_another_is_busy_and_alone_it_is_not() -> None:
    """What `opening` retries apart from UPSTREAM_RETRIES: a preemption the pool calls busy."""
    pool, providers, _ = _pool(urls="http://a/v1")

    def early() -> UpstreamError:
        return UpstreamError("upstream_interrupted", "early", log_fields={"upstream_ended": ENDED_EARLY})

    providers["a"].script = [early(), _ok("held"), early(), early()]
    with pytest.raises(UpstreamError) as alone:
        pool.open(CALL, None, Route())
    assert not alone.value.busy, "alone on its server, it may be a broken upstream"
    held = pool.open(CALL, None, Route())
    with pytest.raises(UpstreamError) as beside:
        pool.open(CALL, None, Route())
    assert beside.value.busy, "preempted beside another of ours"
    held.close()
    with pytest.raises(UpstreamError) as known:
        pool.open(CALL, None, Route())
    assert known.value.busy, "alone again, on a server known to preempt"


def test_concurrency_from_the_file_bounds_a_server_and_the_wait_is_the_callers() -> None:
    pool, providers, _ = _pool(urls="http://a/v1,http://b/v1")
    pool.servers[0].slots = pool.servers[1].slots = 1
    providers["a"].script = [_ok("a")]
    providers["b"].script = [_ok("b")]
    held = [pool.open(CALL, None, Route()), pool.open(CALL, None, Route())]
    assert {g.server.name for g in held} == {"a", "b"}, "the other server takes the second"
    assert pool.route(CALL.model).server is None, "both full: admitted, and the request waits for room"
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
        pool.open(CALL, None, Route())  # the caller's first-token deadline bounds the wait
    assert not len(pool._room), "a waiter that gave up is forgotten"


def test_waits_for_a_servers_room_are_served_in_turn_across_keys() -> None:
    """The red team's finding: one key's 24 streams held another key's first token for 7 s. A
    freed slot goes to the key served least recently, each key's requests in the order they came."""
    pool, providers, _ = _pool(urls="http://a/v1")
    pool.servers[0].slots = 1
    providers["a"].script = [_ok(str(n)) for n in range(8)]
    held = pool.open(CALL, None, Route(owner="burst"))
    order: list[str] = []

    def ask(owner: str, n: int) -> None:
        attempt = pool.open(CALL, None, Route(owner=owner))
        order.append(f"{owner}{n}")
        gevent.sleep(0.01)
        attempt.close()

    waiting = [gevent.spawn(ask, "burst", n) for n in range(4)]
    gevent.sleep(0.01)
    waiting.append(gevent.spawn(ask, "other", 0))  # it came last
    gevent.sleep(0.01)
    held.close()
    gevent.joinall(waiting, timeout=5)
    assert order[:2] == ["other0", "burst0"] and order[2:] == ["burst1", "burst2", "burst3"], order


def test_without_a_fallback_model_an_attempt_gets_the_whole_deadline_by_default(monkeypatch) -> None:
    """UPSTREAM_ATTEMPT_SECONDS unset: the 10 s limit (shortened here) is for a model with a
    fallback (tests/integration/test_failover_scenarios.py); a pool alone waits, busy as it may be."""
    monkeypatch.setattr(opening, "ATTEMPT_SECONDS", 0.2)
    pool, providers, _ = _pool(TIMEOUT_SECONDS="5")
    providers["a"].script = [ScriptedAttempt(["late"], delay=0.5)]
    relay = Relay(pool, pool.settings, Account(CALL, 3, Origin("cid"), Route("a")), Recorder(), metrics=NoMetrics())
    outcome = relay.run()
    assert outcome.error is None and outcome.text == "late" and relay.route.tried == {"a"}
    pool, providers, _ = _pool(TIMEOUT_SECONDS="5", UPSTREAM_ATTEMPT_SECONDS="0")
    providers["a"].script = [ScriptedAttempt(["late"], delay=0.5)]
    account = Account(CALL, 3, Origin("cid"), Route("a"))
    outcome = Relay(pool, pool.settings, account, Recorder(), metrics=NoMetrics()).run()
    assert outcome.error is None and outcome.text == "late", "0: every attempt may take all of the deadline"


def test_a_server_silent_past_its_attempt_is_never_tried_again_by_that_request() -> None:
    pool, providers, _ = _pool(urls="http://a/v1", TIMEOUT_SECONDS="5", UPSTREAM_ATTEMPT_SECONDS="0.2")
    providers["a"].script = [ScriptedAttempt(["late"], delay=3), _ok("never")]
    outcome = Relay(pool, pool.settings, Account(CALL, 3, Origin("cid")), Recorder(), metrics=NoMetrics()).run()
    assert outcome.error is not None and outcome.error.error_code == "upstream_timeout"
    assert "UPSTREAM_ATTEMPT_SECONDS (0.2 s)" in outcome.error.detail and len(providers["a"].script) == 1


def test_the_keys_whose_turn_is_remembered_are_bounded() -> None:
    room = RoomQueue(keys=3)
    for owner in ("a", "b", "c", "d", "e"):
        room.served(owner)
    assert list(room._served) == ["c", "d", "e"], "the longest served ago forgotten first"
