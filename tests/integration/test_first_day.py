"""Issue 82, an operator's first day: what start-up, /ready and clients are told when something is
set up wrong. An unreachable server (a wrong OPENAI_BASE_URL), a refused key, a model the server
does not list (a typo in ALLOWED_MODELS), a budget over models without a price: each said at start-up (one
`upstream_checked` line per server, `budget_without_price`), in /ready (its `servers` and
`notes`), and to clients (a misconfiguration is `upstream_misconfigured`, not "try again"; an
unknown model named) — through the newest openai SDK, as a client sees it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer, FakeUpstream, free_port
from harness.upstream_servers import SwitchServer

from ..conftest import CANARY_KEY, FAKE_MODEL, server_env

pytestmark = pytest.mark.integration

KEY = "first-day-key-0123456789abcdef"


def _lines(server: ChatWaitServer, event: str, seconds: float = 20) -> list[dict]:
    """The log's `event` lines, once one is there (within `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        found = [json.loads(line) for line in server.log_text().splitlines() if f'"{event}"' in line]
        found = [line for line in found if line.get("event") == event]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(scope="module")
def strict_fake() -> Iterator[FakeUpstream]:
    """A server that knows only the names it lists, as OpenAI's API: any other is a 404."""
    upstream = FakeUpstream("--strict-models")
    yield upstream
    upstream.stop()


def test_an_unreachable_server_is_said_at_start_up_and_to_clients_as_a_misconfiguration() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    server = ChatWaitServer(server_env(nowhere, UPSTREAM_MISCONFIGURED_SECONDS="1", UPSTREAM_RETRIES="0"))
    try:
        (line,) = _lines(server, "upstream_checked")
        assert line["level"] == "WARNING" and line["reached"] is False, line
        assert "Could not connect" in line["detail"] and "OPENAI_BASE_URL" in line["detail"]
        assert line["url"] == nowhere.removesuffix("/v1")
        ready = httpx.get(f"{server.url}/ready", timeout=30)
        (entry,) = ready.json()["servers"]
        assert ready.status_code == 503 and (entry["state"], entry["ok"]) == ("failing", False), "one story"
        time.sleep(1.2)  # refused since start for longer than UPSTREAM_MISCONFIGURED_SECONDS
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as told:
            client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}])
        client.close()
        error = told.value.response.json()["error"]  # OpenAI's shape: the code, and the words in `message`
        assert told.value.status_code == 502 and error["code"] == "upstream_misconfigured", error
        assert "looks misconfigured" in error["message"] and "tell the service's operator" in error["message"]
        assert "Try again" not in error["message"] and "127.0.0.1" not in json.dumps(error), "no address to a client"
    finally:
        server.stop()


def test_a_model_the_server_does_not_know_is_named_at_start_up_and_to_clients(strict_fake, tmp_path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{KEY} name=spender budget_day=1\n")
    env = server_env(strict_fake.base_url, ALLOWED_MODELS=f"{FAKE_MODEL},fake-modle", CHATWAIT_API_KEYS_FILE=str(keys))
    server = ChatWaitServer(env)
    try:
        (line,) = _lines(server, "upstream_checked")
        assert line["level"] == "WARNING" and line["reached"] is True, line
        assert line["unlisted_models"] == ["fake-modle"] and line["models_listed"] == 2
        (budget,) = _lines(server, "budget_without_price")
        assert budget["key_name"] == "spender" and "no price" in budget["detail"]
        ready = httpx.get(f"{server.url}/ready", timeout=30).json()
        assert ready["servers"][0]["unlisted"] == ["fake-modle"]
        assert ready["notes"] == [budget["detail"]], "the budget's note in /ready too"
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as told:
            client.chat.completions.create(model="fake-modle", messages=[{"role": "user", "content": "hi"}])
        answered = client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}])
        client.close()
        error = told.value.response.json()["error"]
        assert told.value.status_code == 502 and error["code"] == "upstream_model_unknown", error
        assert "'fake-modle': it does not know that model name" in error["message"]
        assert answered.choices[0].message.content, "the listed model answers"
        assert CANARY_KEY not in server.log_text()
    finally:
        server.stop()


def test_a_refused_key_is_said_at_start_up_and_to_clients_as_the_operators_to_fix() -> None:
    refusing = SwitchServer("status:401")  # every request answered 401, as a server refusing the key
    server = ChatWaitServer(server_env(refusing.base_url, UPSTREAM_RETRIES="0"))
    try:
        (line,) = _lines(server, "upstream_checked")
        assert line["level"] == "WARNING" and line["reached"] is False, line
        assert "OPENAI_API_KEY" in line["detail"], "the setting to look at"
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as told:
            client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "hi"}])
        client.close()
        error = told.value.response.json()["error"]
        assert told.value.status_code == 502 and error["code"] == "upstream_auth_failed", error
        assert "tell the service's operator" in error["message"] and "Try again" not in error["message"]
    finally:
        server.stop()
        refusing.close()
