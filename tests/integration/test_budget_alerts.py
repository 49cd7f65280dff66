"""Budget alerts on two instances x two workers sharing Redis: a key's settled spend crossing 50%
of its daily budget, and each end user's crossing 50% and 80% of theirs and then refusing before
100%, reaches a test receiver once per threshold, each with a valid signature, whichever worker
admitted the request that crossed it. A small budget ($0.004) is served until what is left is
less than one answer, its last answers lowered and saying so."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env

pytestmark = pytest.mark.integration

KEY = "alerts-key-0123456789abcdef"
SECRET = "alerts-secret-0123456789"
RECEIVED: list[tuple[dict, str]] = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        RECEIVED.append((json.loads(body), self.headers["X-ChatWait-Signature"] + "|" + body.decode()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def instances(fake: FakeUpstream, redis_server, receiver, tmp_path_factory) -> Iterator[list[str]]:
    folder = tmp_path_factory.mktemp("alerts")
    prices = f"prices: {{{FAKE_MODEL}: {{input: 100, output: 1000}}}}\n"
    (folder / "upstreams.yaml").write_text(f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n{prices}")
    (folder / "keys").write_text(f"{KEY} name=alerted budget_day=0.25 user_budget_day=0.1\n")
    env = server_env("", UPSTREAMS_FILE=str(folder / "upstreams.yaml"), CHATWAIT_API_KEYS_FILE=str(folder / "keys"),
                     STREAM_STORE="redis", REDIS_URL=redis_server.url, WEB_CONCURRENCY="2",
                     BUDGET_ALERT_WEBHOOK=receiver, BUDGET_ALERT_SECRET=SECRET)  # fmt: skip
    running = [ChatWaitServer(env), ChatWaitServer(env)]
    yield [server.url for server in running]
    for server in running:
        server.stop()


def _of(key: str) -> list[tuple[dict, str]]:
    """The alerts received of the key named `key`."""
    return [(alert, signed) for alert, signed in list(RECEIVED) if alert["key"] == key]


def _valid(signed: str) -> bool:
    header, body = signed.split("|", 1)
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.{body}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(parts["v1"], expected)


def test_each_threshold_reaches_the_receiver_once_with_a_valid_signature(instances) -> None:
    body = {"model": FAKE_MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hello @tokens=10"}]}
    headers = {"Authorization": f"Bearer {KEY}", "X-ChatWait-User": "alice"}
    for n in range(40):  # about a cent each: alice's 0.1 goes after about nine
        answer = httpx.post(f"{instances[n % 2]}/v1/chat/completions", json=body, headers=headers, timeout=30)
        if answer.status_code == 429:
            break
    headers["X-ChatWait-User"] = "bob"
    for n in range(40):
        answer = httpx.post(f"{instances[n % 2]}/v1/chat/completions", json=body, headers=headers, timeout=30)
        if answer.status_code == 429:
            break
    deadline = time.monotonic() + 10
    # The key's 0.25: alice's and bob's 0.09 or so settled reach its 50 % only; each end user's 0.1
    # reaches 80 %, then refuses before 100 % (what is left is less than an answer): `refusing`.
    expected = {(None, "budget_day", 50)} | {
        (user, "user_budget_day", p) for user in ("alice", "bob") for p in (50, 80, None)}  # fmt: skip
    while (got := {(a["end_user"], a["budget"], a["threshold_percent"]) for a, _ in _of("alerted")}) != expected:
        assert time.monotonic() < deadline, f"missing {expected - got}, more {got - expected}"
        time.sleep(0.1)
    time.sleep(1.0)  # any second alert of a threshold would have come by now
    seen = [(a["end_user"], a["budget"], a["threshold_percent"]) for a, _ in _of("alerted")]
    assert sorted(seen, key=str) == sorted(expected, key=str), "each threshold once, across workers and instances"
    assert all(_valid(signed) for _, signed in _of("alerted"))
    assert all(a["period"] for a, _ in _of("alerted"))
    for alert, _ in _of("alerted"):  # each at the spend it names, settled (no reservation counted as spent)
        kind = "budget.refusing" if alert["threshold_percent"] is None else "budget.threshold"
        assert alert["type"] == kind
        if alert["threshold_percent"] is not None:
            assert alert["spent_usd"] >= alert["budget_usd"] * alert["threshold_percent"] / 100 - 1e-9
        assert alert["spent_usd"] < alert["budget_usd"], "a budget refusing before it is all spent says so"


SMALL = "small-budget-key-0123456789abcdef"


def test_a_small_budget_is_served_until_less_than_an_answer_is_left(fake, receiver, tmp_path) -> None:
    """The red team's $0.004 a day key was refused after $0.0013 (each reservation held two
    continuations' allowance), its answers cut shorter and shorter with nothing said, and its 50,
    80 and 100 % alerts all sent after the first request. Now: whole answers while one fits, then
    one lowered to what is left (said by a header and on the log line), then a refusal saying
    what is left; each alert at the settled spend it names."""
    (tmp_path / "upstreams.yaml").write_text(
        f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n"
        f"prices: {{{FAKE_MODEL}: {{input: 10, output: 100}}}}\n"
    )
    (tmp_path / "keys").write_text(f"{SMALL} name=small budget_day=0.004\n")
    env = server_env("", UPSTREAMS_FILE=str(tmp_path / "upstreams.yaml"), CHATWAIT_API_KEYS_FILE=str(tmp_path / "keys"),
                     UPSTREAM_RESCUES="2", BUDGET_MIN_TOKENS="4", BUDGET_ALERT_WEBHOOK=receiver,
                     BUDGET_ALERT_SECRET=SECRET)  # fmt: skip
    server = ChatWaitServer(env)
    try:
        asked = [{"role": "user", "content": "Hello @tokens=15 @limit=max_tokens"}]
        body = {"model": FAKE_MODEL, "max_tokens": 15, "messages": asked}
        answers = []
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {SMALL}"}, timeout=30) as client:
            while len(answers) < 20 and (not answers or answers[-1].status_code == 200):
                answers.append(client.post("/v1/chat/completions", json=body))
            spent = client.get("/v1/spend").json()["budgets"]["budget_day"]["spent_usd"]
        served, refused = answers[:-1], answers[-1]
        whole = [a for a in served if "x-chatwait-max-tokens-lowered" not in a.headers]
        lowered = [a for a in served if "x-chatwait-max-tokens-lowered" in a.headers]
        assert len(whole) >= 2 and all(a.json()["usage"]["completion_tokens"] == 15 for a in whole), "whole answers"
        assert served.index(whole[-1]) == len(whole) - 1, "whole answers while one fits, then lowered ones"
        for answer in lowered:
            most = int(answer.headers["x-chatwait-max-tokens-lowered"])
            assert 4 <= most < 15 and answer.json()["usage"]["completion_tokens"] <= most
            assert answer.headers["x-chatwait-adapted"] == f"max_tokens lowered to {most} (the key's budget)"
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exhausted", refused.text
        assert "is left, less than the least answer" in refused.json()["error"]["message"]
        assert lowered, "the last answer that fits is lowered to what is left"
        least = (20 * 10 + 4 * 100) / 1e6  # a prompt of ~20 tokens and the floor's 4
        assert 0.004 - least <= spent <= 0.004 + 1e-9, f"served until less than an answer was left: {spent}"
        lines = [r for r in server.log_records() if r.get("event") == "request_completed"]
        logged = [line for line in lines if "max_tokens_lowered" in line]
        assert len(logged) == len(lowered)
        deadline = time.monotonic() + 10
        reached = {percent for percent in (50, 80, 100) if spent >= 0.004 * percent / 100} | {None}
        while {a["threshold_percent"] for a, _ in _of("small")} != reached:
            assert time.monotonic() < deadline, _of("small")
            time.sleep(0.1)
        for alert, _ in _of("small"):
            assert alert["spent_usd"] < 0.004
            if alert["threshold_percent"] is not None:
                assert alert["spent_usd"] >= 0.004 * alert["threshold_percent"] / 100 - 1e-12, alert
    finally:
        server.stop()
