"""What a request costs when its upstream read part of the prompt from its cache and wrote part
of it there: the upstream's usage times the prices table's rates (`cached_input`, `cache_write`,
`cache_write_long`), to the cent, in the ledger's attempts, the usage and X-ChatWait-Cost-USD,
streamed and not, on an OpenAI-compatible upstream (`cache_write_tokens`) and on an Anthropic one
(`cache_creation_input_tokens`, one-hour writes in `cache_creation`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.fake_anthropic import CACHE_READ, CACHE_WRITTEN
from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, anthropic_upstream, server_env
from ..sse import parse

pytestmark = pytest.mark.integration

INPUT, CACHED, WRITE, WRITE_LONG, OUTPUT = 3.0, 0.3, 3.75, 6.0, 15.0  # USD per million tokens
PRICES = {"input": INPUT, "cached_input": CACHED, "cache_write": WRITE, "cache_write_long": WRITE_LONG,
          "output": OUTPUT}  # fmt: skip
PROMPT = " ".join(["words"] * 120)  # more tokens than the cache reads and writes


@pytest.fixture(scope="module")
def openai_server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    listing = tmp_path_factory.mktemp("cache-prices") / "upstreams.yaml"
    listing.write_text(f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n"
                       f"prices: {json.dumps({FAKE_MODEL: PRICES})}\n")  # fmt: skip
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing)))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def claude_server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    listing = anthropic_upstream(fake, tmp_path_factory.mktemp("cache-prices-claude"))
    prices = "".join(f"{name} = {value}\n" for name, value in PRICES.items())
    listing.write_text(listing.read_text() + f'\n[prices."{FAKE_MODEL}"]\n{prices}')
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing)))
    yield running
    running.stop()


def _cost(fresh: int, cached: int, written: int, long: int, output: int) -> float:
    rates = fresh * INPUT + cached * CACHED + (written - long) * WRITE + long * WRITE_LONG + output * OUTPUT
    return round(rates / 1e6, 9)


def _attempt(ledger: dict) -> dict:
    (attempt,) = ledger["attempts"]
    return attempt


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_compatible_upstreams_cache_reads_and_writes_are_priced(openai_server, stream: bool) -> None:
    content = f"{uuid.uuid4().hex} {PROMPT} @tokens=5 @cache_read=40 @cache_write=30"
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": content}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    answer = httpx.post(f"{openai_server.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    if stream:
        usage = next(event.data["usage"] for event in parse(answer.content)[0] if isinstance(event.data, dict)
                     and event.data.get("usage"))  # fmt: skip
    else:
        usage = answer.json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 40, "cache_write_tokens": 30}
    prompt = usage["prompt_tokens"]
    expected = _cost(prompt - 70, 40, 30, 0, 5)
    ledger = usage["chatwait"]
    assert (_attempt(ledger)["cached_tokens"], _attempt(ledger)["cache_write_tokens"]) == (40, 30)
    assert _attempt(ledger)["cost_usd"] == pytest.approx(expected, abs=1e-9)
    assert ledger["cost_usd"] == pytest.approx(expected, abs=1e-9)
    if not stream:
        assert float(answer.headers["x-chatwait-cost-usd"]) == pytest.approx(expected, abs=1e-9)
    assert expected > _cost(prompt - 40, 40, 0, 0, 5), "a write costs more than plain input"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_an_anthropic_upstreams_cache_reads_and_writes_are_priced(claude_server, stream: bool, ttl: str) -> None:
    block = {"type": "text", "text": f"{uuid.uuid4().hex} {PROMPT} @tokens=4",
             "cache_control": {"type": "ephemeral", "ttl": ttl}}  # fmt: skip
    body = {"model": FAKE_MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": [block]}], "stream": stream}
    answer = httpx.post(f"{claude_server.url}/v1/messages", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    if stream:
        events = [event.data for event in parse(answer.content)[0] if isinstance(event.data, dict)]
        usage = next(event["usage"] for event in events if event.get("type") == "message_delta")
    else:
        usage = answer.json()["usage"]
    long = CACHE_WRITTEN if ttl == "1h" else 0
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (CACHE_READ, CACHE_WRITTEN)
    lifetimes = {"ephemeral_5m_input_tokens": CACHE_WRITTEN - long, "ephemeral_1h_input_tokens": long}
    assert usage["cache_creation"] == lifetimes
    expected = _cost(usage["input_tokens"], CACHE_READ, CACHE_WRITTEN, long, usage["output_tokens"])
    ledger = usage["chatwait"]
    assert _attempt(ledger).get("cache_write_long_tokens", 0) == long
    assert _attempt(ledger)["cost_usd"] == pytest.approx(expected, abs=1e-9)
    assert ledger["cost_usd"] == pytest.approx(expected, abs=1e-9)
    if not stream:
        assert float(answer.headers["x-chatwait-cost-usd"]) == pytest.approx(expected, abs=1e-9)
