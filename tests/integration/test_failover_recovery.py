"""Failover Bench S15 in real time, on a fresh instance with default settings: a primary down
(503) for 60 seconds, its fallback configured; a client asks about once a second. Every request is
answered (by the fallback while the primary is down), and once the primary is back it answers
again within 30 seconds, however long it was down (its rests double up to 15 s; the unit tests in
test_pool drive the same state machine through longer outages on a clock of their own)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import openai
import pytest

from harness.processes import ChatWaitServer, FakeUpstream
from harness.upstream_servers import SwitchServer

from ..conftest import CANARY_KEY

pytestmark = pytest.mark.integration

DOWN_SECONDS = 60.0
BACK_WITHIN_SECONDS = 30.0


@pytest.fixture
def deployment(fake: FakeUpstream, tmp_path) -> Iterator[tuple[ChatWaitServer, SwitchServer]]:
    primary = SwitchServer("status:503", fake.port)
    listing = tmp_path / "upstreams.yaml"
    listing.write_text(
        f"upstreams:\n  - {{name: primary, url: {primary.base_url!r}, models: [primary]}}\n"
        f"  - {{name: backup, url: {fake.base_url!r}, models: [backup]}}\nfallbacks: {{primary: [backup]}}\n"
    )
    env = {"UPSTREAMS_FILE": str(listing), "OPENAI_API_KEY": CANARY_KEY, "OPENAI_MODEL": "primary"}
    server = ChatWaitServer({**env, "ALLOWED_MODELS": "", "WEB_CONCURRENCY": "1"})
    yield server, primary
    server.stop()
    primary.close()


def test_a_primary_down_for_a_minute_is_used_again_within_30_seconds_of_its_recovery(deployment) -> None:
    server, primary = deployment
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30)
    began, answered_by = time.monotonic(), []
    recovered_at = None
    while True:
        now = time.monotonic() - began
        if recovered_at is None and now >= DOWN_SECONDS:
            primary.mode, recovered_at = "pass", now
        ask = [{"role": "user", "content": f"{uuid.uuid4().hex} @tokens=2"}]
        answer = sdk.chat.completions.create(model="primary", messages=ask)  # raises if any is refused
        answered_by.append(answer.model)
        if recovered_at is not None and answer.model == "primary":
            back_after = time.monotonic() - began - recovered_at
            break
        assert now < DOWN_SECONDS + BACK_WITHIN_SECONDS, "the primary is not used again within 30 s of its recovery"
        time.sleep(1.0)
    sdk.close()
    assert back_after <= BACK_WITHIN_SECONDS
    assert set(answered_by[:-1]) == {"backup"}, "while it was down, the fallback answered every request"
    assert primary.answered <= 3 + DOWN_SECONDS / 5, "the breaker kept requests off it: a probe per rest"
