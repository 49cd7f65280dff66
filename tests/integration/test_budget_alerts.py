"""Budget alerts on two instances x two workers sharing Redis: a key's spend crossing 50% and 80%
of its daily budget, and each end user's crossing 50%, 80% and 100% of theirs, reaches a test
receiver once per threshold, each with a valid signature, whichever worker admitted the request
that crossed it."""

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
    expected = {(None, "budget_day", p) for p in (50, 80)} | {  # the key's 0.25: 0.2 and what is reserved
        (user, "user_budget_day", p) for user in ("alice", "bob") for p in (50, 80, 100)}  # fmt: skip
    while (got := {(a["end_user"], a["budget"], a["threshold_percent"]) for a, _ in RECEIVED}) != expected:
        assert time.monotonic() < deadline, f"missing {expected - got}, more {got - expected}"
        time.sleep(0.1)
    time.sleep(1.0)  # any second alert of a threshold would have come by now
    seen = [(a["end_user"], a["budget"], a["threshold_percent"]) for a, _ in RECEIVED]
    assert sorted(seen, key=str) == sorted(expected, key=str), "each threshold once, across workers and instances"
    assert all(_valid(signed) for _, signed in RECEIVED)
    assert all(a["key"] == "alerted" and a["period"] for a, _ in RECEIVED)
