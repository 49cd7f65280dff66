"""Issue 82: a configuration error told from a passing one. A model whose every server has refused
every attempt (checks too) for UPSTREAM_MISCONFIGURED_SECONDS since the worker started is
`upstream_misconfigured` (tell the operator), not "try again"; a server that answered once is in
an outage when it fails, never misconfigured; a fallback model still answers. Start-up says what
the first check found of each server, as /ready's `servers` do."""

from __future__ import annotations

import logging

import pytest

from app.accounts.account import Account, Origin
from app.errors import CATALOGUE, ApiError
from app.generation.relay import Relay
from app.metrics.catalogue import NoMetrics
from app.providers.base import UpstreamError
from app.providers.call import Route
from app.service.readiness import Readiness
from app.streaming.store import MemoryStreamStore

from .test_pool import CALL, _ok, _open, _pool, _with_fallback
from .test_relay import Recorder

REFUSED = UpstreamError("upstream_unavailable", "Could not connect to the model provider.")


def _refusing(pool, providers, clock, seconds: float, step: float = 5.0) -> list[str]:
    """Requests every `step` seconds for `seconds`, each refused: the error codes they got."""
    codes = []
    for _ in range(int(seconds / step)):
        clock.now += step
        providers["a"].script = [REFUSED]
        try:
            _open(pool)
        except (ApiError, UpstreamError) as failure:
            codes.append(failure.error_code)
    return codes


def test_a_lone_server_refusing_since_start_is_misconfigured_after_a_minute() -> None:
    pool, providers, clock = _pool(urls="http://a/v1")
    codes = _refusing(pool, providers, clock, 60)  # the first at 5 s, the last 55 s after it
    assert set(codes) == {"upstream_unavailable"}, "under a minute: perhaps passing"
    codes = _refusing(pool, providers, clock, 20)
    assert codes and set(codes) == {"upstream_misconfigured"}, codes
    with pytest.raises((ApiError, UpstreamError)) as told:
        providers["a"].script = [REFUSED]
        _open(pool)
    said = "Every attempt to reach the model server of m has failed, for 75 s, since this service started."
    assert told.value.detail == said
    kind = CATALOGUE["upstream_misconfigured"]
    assert not kind.retryable and "tell the service's operator" in kind.action and kind.status == 502
    clock.now += 30
    providers["a"].script = [_ok("fixed")]
    assert _open(pool)[1] == ["fixed"], "an attempt still goes to it: fixed, it answers"
    assert _refusing(pool, providers, clock, 120) and pool.misconfigured(CALL.model) is None, "now an outage"


def test_a_server_that_answered_once_is_in_an_outage_not_misconfigured() -> None:
    pool, providers, clock = _pool(urls="http://a/v1")
    providers["a"].script = [_ok()]
    _open(pool)
    codes = _refusing(pool, providers, clock, 300)
    assert "upstream_misconfigured" not in codes and "upstream_unavailable" in codes


def test_a_model_with_one_server_answering_is_never_misconfigured() -> None:
    pool, providers, clock = _pool()
    providers["b"].script = [_ok() for _ in range(100)]
    codes = []
    for _ in range(30):
        clock.now += 5
        providers["a"].script = [REFUSED]
        route = Route("a", pinned=True)
        with pytest.raises(UpstreamError) as failed:
            pool.open(CALL, None, route)
        codes.append(failed.value.error_code)
        assert _open(pool, route)[1] == ["hi"], "failed over to b"
    assert set(codes) == {"upstream_unavailable"}, "b answers the model: a request fails over, never told"
    assert pool.servers[0].misconfigured(clock.now, 60.0) and pool.misconfigured(CALL.model) is None


def test_a_failed_check_at_start_up_counts_and_a_passing_one_clears() -> None:
    pool, providers, clock = _pool(urls="http://a/v1")
    providers["a"].check = lambda: (False, "http://a (set by OPENAI_BASE_URL): Could not connect.")
    pool.check()
    clock.now += 61
    providers["a"].script = [REFUSED]
    with pytest.raises(UpstreamError) as told:
        _open(pool)
    assert told.value.error_code == "upstream_misconfigured", "the start-up check was the first refusal"
    providers["a"].check = lambda: (True, "GET /models answered HTTP 200.")
    pool.check()
    providers["a"].script = [REFUSED]
    with pytest.raises(UpstreamError) as passing:
        _open(pool)
    assert passing.value.error_code == "upstream_unavailable", "it answered a check: an outage now"


def test_zero_seconds_never_says_misconfigured() -> None:
    pool, providers, clock = _pool(urls="http://a/v1", UPSTREAM_MISCONFIGURED_SECONDS="0")
    assert "upstream_misconfigured" not in _refusing(pool, providers, clock, 600)


def test_a_misconfigured_models_requests_go_to_its_fallback(tmp_path) -> None:
    pool, providers, clock = _with_fallback(tmp_path)
    for server in pool.servers:
        server.reached(False) if server.name == "a" else server.reached(True)
    clock.now += 120
    assert pool.misconfigured("m") is not None and pool.misconfigured("f") is None
    providers["a"].script = [REFUSED]
    providers["b"].script = [_ok("from ", "f")]
    account = Account(CALL, 3, Origin("cid"), Route())
    outcome = Relay(pool, pool.settings, account, Recorder(), metrics=NoMetrics()).run()
    assert outcome.error is None and outcome.text == "from f"


def test_start_up_says_what_the_first_check_found_of_each_server(tmp_path, caplog) -> None:
    listing = tmp_path / "u.toml"
    listing.write_text(
        '[[upstream]]\nname="a"\nurl="http://a/v1"\nmodels=["m"]\n'
        '[[upstream]]\nname="b"\nurl="http://b/v1"\nmodels=["m", "typo"]\n'
        '[[upstream]]\nname="c"\nurl="http://c/v1"\nmodels=["m"]\n'
    )
    pool, providers, _ = _pool(urls="", UPSTREAMS_FILE=str(listing), ALLOWED_MODELS="m,typo")
    providers["a"].check = lambda: (False, "http://a (set by UPSTREAMS_FILE): Could not connect. Check its url.")
    providers["b"].check = lambda: (True, "GET /models answered HTTP 200.")
    providers["b"].listed_models = lambda: frozenset(("m", "other"))
    providers["c"].check = lambda: (True, "GET /models answered HTTP 200.")
    readiness = Readiness(pool, MemoryStreamStore(10, 60), 10.0)
    with caplog.at_level(logging.INFO, logger="chatwait.ready"):
        readiness.announce().join(timeout=10)
    said = {r.upstream_server: r for r in caplog.records if r.msg == "upstream_checked"}
    assert set(said) == {"a", "b", "c"}, "one line per configured server"
    assert (said["a"].levelname, said["a"].reached, said["a"].unlisted_models) == ("WARNING", False, [])
    assert "Could not connect" in said["a"].detail and said["a"].url == "http://a"
    assert (said["b"].levelname, said["b"].reached, said["b"].unlisted_models) == ("WARNING", True, ["typo"])
    assert said["b"].models_listed == 2
    assert (said["c"].levelname, said["c"].reached, said["c"].models_listed) == ("INFO", True, None)
    servers = {s["name"]: s for s in pool.describe()["servers"]}
    assert (servers["a"]["state"], servers["a"]["ok"]) == ("failing", False), "/ready says the same"
    assert servers["b"]["unlisted"] == ["typo"] and servers["b"]["listed"] == 2
