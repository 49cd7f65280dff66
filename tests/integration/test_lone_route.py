"""A lone route is never shut by one request: with one model server (the default OPENAI_BASE_URL
set-up) and the default breaker (UPSTREAM_BREAKER_FAILURES=3), one client's failing request
leaves the next client served; a hard-down server gets a trickle of attempts while clients get
503 with Retry-After at once; an upstream 429 reaches the clients shed meanwhile as a rate limit;
and the server is used again within seconds of its recovery.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.processes import ChatWaitServer
from harness.upstream_servers import SwitchServer

from ..conftest import server_env
from ..sse import expected_reply
from .test_scale_out import ARTIFACTS, FRESH

pytestmark = pytest.mark.integration

CLIENTS = 8
OUTAGE_SECONDS = 10.0


def _lone(url: str, **overrides: str) -> ChatWaitServer:
    env = server_env(url, UPSTREAM_RETRIES="2", WEB_CONCURRENCY="2", **overrides)
    env.pop("UPSTREAM_BREAKER_FAILURES")  # the product's default (3)
    return ChatWaitServer(env)


def _ask(server: ChatWaitServer, message: str) -> httpx.Response:
    with httpx.Client(timeout=30, limits=FRESH) as client:
        return client.post(f"{server.url}/v1/chat/wait", json={"message": f"{message} {uuid.uuid4().hex[:6]}"})


def test_one_failing_request_leaves_the_next_client_served(fake) -> None:
    server = _lone(fake.base_url)
    try:
        assert _ask(server, "@fault=500 @tokens=3").status_code == 503  # one request fails its 3 attempts
        for _ in range(6):
            answer = _ask(server, "@tokens=3")
            assert answer.status_code == 200 and answer.json()["content"] == expected_reply(3), answer.text
    finally:
        server.stop()


def _hammer(server: ChatWaitServer, seconds: float) -> list[tuple[int, str | None]]:
    """CLIENTS clients asking again and again for `seconds`: each answer's status and Retry-After."""
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            reply = _ask(server, "@tokens=2")
            with lock:
                answers.append((reply.status_code, reply.headers.get("retry-after")))
            if reply.status_code != 200:
                time.sleep(0.05)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for running in [pool.submit(client) for _ in range(CLIENTS)]:
            running.result()
    return answers


def test_a_hard_down_lone_server_gets_a_trickle_and_is_used_again_when_back(fake) -> None:
    switch = SwitchServer("status:503")
    server = _lone(switch.base_url)
    try:
        answers = _hammer(server, OUTAGE_SECONDS)
        attempts = switch.answered
        assert answers and all(status == 503 and after for status, after in answers), answers[:5]
        # Every client request would be 3 attempts without throttling; shed, most never leave.
        assert attempts < len(answers) / 2, (attempts, len(answers))
        assert attempts <= 6 * OUTAGE_SECONDS, f"{attempts} attempts in {OUTAGE_SECONDS:g} s: a few a second at most"
        switch.target_port, switch.mode = fake.port, "pass"
        back = time.monotonic()
        first_served = all_served = None
        while all_served is None and time.monotonic() - back < 60:
            ok = sum(_ask(server, "@tokens=2").status_code == 200 for _ in range(4))
            first_served = first_served or (time.monotonic() - back if ok else None)
            all_served = time.monotonic() - back if ok == 4 else None
            time.sleep(0.2)
        ARTIFACTS.mkdir(exist_ok=True)
        summary = {
            "requests_in_outage": len(answers),
            "upstream_attempts_in_outage": attempts,
            "outage_seconds": OUTAGE_SECONDS,
            "first_served_after_recovery_seconds": first_served and round(first_served, 1),
            "all_served_after_recovery_seconds": all_served and round(all_served, 1),
        }
        (ARTIFACTS / "lone-route.json").write_text(json.dumps(summary))
        assert first_served is not None and first_served < 30, summary
        assert all_served is not None and all_served < 45, summary
    finally:
        server.stop()
        switch.close()


def test_an_upstream_rate_limit_reaches_the_shed_clients_as_a_rate_limit() -> None:
    switch = SwitchServer("status:429:30")
    server = _lone(switch.base_url)
    try:
        answers = _hammer(server, 3.0)
        assert answers and {status for status, _ in answers} == {429}, answers[:5]
        assert all(after is not None and 1 <= float(after) <= 30 for _, after in answers)
    finally:
        server.stop()
        switch.close()
