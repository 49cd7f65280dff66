"""Prices in UPSTREAMS_FILE: what a generation cost in the native usage (wait and the `done`
event), the X-ChatWait-Cost-USD header of every family's whole answer, the completion log line
and /metrics; a model without a price has no cost anywhere."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env, store_env
from ..sse import parse

pytestmark = pytest.mark.integration

UNPRICED = "other-model"
INPUT, OUTPUT = 3.0, 15.0  # USD per million tokens


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[ChatWaitServer]:
    listing = tmp_path_factory.mktemp("prices") / "upstreams.yaml"
    listing.write_text(
        f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n"
        f"prices: {{{FAKE_MODEL}: {{input: {INPUT}, output: {OUTPUT}}}}}\n"
    )
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing), **store_env(request, request.param)))
    yield running
    running.stop()


def _expected(usage: dict) -> float:
    return round((usage["prompt_tokens"] * INPUT + usage["completion_tokens"] * OUTPUT) / 1e6, 9)


def test_a_whole_answer_says_what_it_cost_in_its_usage_and_its_header(server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        waited = http.post("/v1/chat/wait", json={"message": "Hello @tokens=5"})
        usage = waited.json()["usage"]
        assert usage["completion_tokens"] == 5 and usage["cost_usd"] == pytest.approx(_expected(usage))
        assert float(waited.headers["x-chatwait-cost-usd"]) == pytest.approx(usage["cost_usd"])
        for path, body in (
            ("/v1/chat/completions", {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "@tokens=4"}]}),
            ("/v1/responses", {"model": FAKE_MODEL, "input": "@tokens=4"}),
            ("/v1/messages", {"model": FAKE_MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "@x"}]}),
        ):
            answer = http.post(path, json=body)
            assert answer.status_code == 200, answer.text
            assert float(answer.headers["x-chatwait-cost-usd"]) > 0, path
        unpriced = http.post("/v1/chat/wait", json={"message": "@tokens=3", "model": UNPRICED})
        assert unpriced.status_code == 200 and "cost_usd" not in unpriced.json()["usage"]
        assert "x-chatwait-cost-usd" not in unpriced.headers


def test_a_stream_says_what_it_cost_in_its_done_event_its_log_line_and_the_metrics(server) -> None:
    streamed = httpx.post(f"{server.url}/v1/chat/streaming", json={"message": "Hi @tokens=6"}, timeout=30)
    done = parse(streamed.content)[0][-1]
    assert done.event == "done" and done.data["usage"]["cost_usd"] == pytest.approx(_expected(done.data["usage"]))
    assert "x-chatwait-cost-usd" not in streamed.headers, "a stream's cost is known at its end: in its done event"
    stream_id = streamed.headers["x-stream-id"]
    lines = [r for r in server.log_records() if r.get("stream_id") == stream_id and "cost_usd" in r]
    assert lines and lines[-1]["cost_usd"] == done.data["usage"]["cost_usd"]
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    series = f'chatwait_cost_usd_total{{model="{FAKE_MODEL}"}}'
    spent = [line for line in metrics.splitlines() if line.startswith(series)]
    assert spent and float(spent[0].split()[-1]) >= done.data["usage"]["cost_usd"]
    assert f'chatwait_cost_usd_total{{model="{UNPRICED}"}}' not in metrics


def test_a_responses_object_says_its_cost_once_it_has_ended(server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        started = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": "@tokens=30 @delay_ms=20",
                                                   "background": True})  # fmt: skip
        assert started.status_code == 200 and "x-chatwait-cost-usd" not in started.headers, "running: no cost yet"
        for _ in range(100):
            found = http.get(f"/v1/responses/{started.json()['id']}")
            if found.json()["status"] == "completed":
                break
            assert "x-chatwait-cost-usd" not in found.headers
            time.sleep(0.1)
        assert float(found.headers["x-chatwait-cost-usd"]) == pytest.approx(
            _expected({"prompt_tokens": found.json()["usage"]["input_tokens"], "completion_tokens": 30})
        )
