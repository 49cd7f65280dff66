"""Refusal fallback, opt-in per server (`fallback_on_refusal: true` in UPSTREAMS_FILE): a model's
refusal (an OpenAI-compatible server's `refusal` deltas, an Anthropic server's `stop_reason:
refusal`) goes to the model's fallback, on chat completions, the Responses API and the Messages
API, streamed and not. Before the first token the fallback answers; after it, the fallback
continues the reply from what was delivered; one terminal event either way. A server without the
setting passes a refusal on (Failover Bench S13: no retry on a content filter), as does one whose
model has no fallback left. Anthropic's own `fallbacks` field and beta header reach an Anthropic
server as sent, and are named where the server cannot take them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import CANARY_KEY, UPSTREAM_KEY
from ..sse import expected_reply, parse

pytestmark = pytest.mark.integration

# careful: an OpenAI-compatible server that sends refusals on; claude: an Anthropic one that
# does too; strict: one that does not; backup: every model's fallback.
LISTING = """
[[upstream]]
name = "careful"
url = "{fake}"
models = ["careful"]
fallback_on_refusal = true

[[upstream]]
name = "claude"
url = "{fake}"
kind = "anthropic"
api_key = "{key}"
models = ["claude"]
fallback_on_refusal = true
continuation = "prefill"

[[upstream]]
name = "strict"
url = "{fake}"
models = ["strict"]

[[upstream]]
name = "backup"
url = "{fake}"
models = ["backup"]

[fallbacks]
careful = ["backup"]
claude = ["backup"]
strict = ["backup"]
"""


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    listing = tmp_path_factory.mktemp("refusals") / "upstreams.toml"
    listing.write_text(LISTING.format(fake=fake.base_url, key=UPSTREAM_KEY))
    env = {"UPSTREAMS_FILE": str(listing), "OPENAI_API_KEY": CANARY_KEY, "ALLOWED_MODELS": "", "TIMEOUT_SECONDS": "10"}
    running = ChatWaitServer(env)
    yield running
    running.stop()


@pytest.fixture
def sdk(server: ChatWaitServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
        yield client


def _ask(directives: str, model: str) -> str:
    return f"{uuid.uuid4().hex} {directives} @only={model}"


def _models(fake: FakeUpstream, message: str) -> list[str]:
    return [outcome["model"] for outcome in fake.outcomes_for(message)]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("model", "refusing"),
    [("careful", "@refusal=3"), ("claude", "@refusal=3")],
    ids=["refusal-deltas", "stop-reason-refusal"],
)
def test_a_refusal_before_the_first_token_is_answered_by_the_fallback(sdk, fake, model, refusing, stream) -> None:
    message = _ask(f"{refusing} @tokens=6", model)
    messages = [{"role": "user", "content": message}]
    if stream:
        with sdk.chat.completions.stream(model=model, messages=messages) as events:
            answer = events.get_final_completion()
    else:
        answer = sdk.chat.completions.create(model=model, messages=messages)
    choice = answer.choices[0]
    assert answer.model == "backup" and choice.finish_reason == "stop", answer
    assert choice.message.content == expected_reply(6) and not choice.message.refusal
    assert _models(fake, message) == [model, "backup"], "asked once, then its fallback"


def test_a_refusal_after_the_first_token_is_continued_by_the_fallback_from_what_was_delivered(server, fake) -> None:
    message = _ask("@tokens=8 @finish=content_filter", "claude")
    body = {"model": "claude", "messages": [{"role": "user", "content": message}], "stream": True}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    events, _ = parse(answer.content)
    chunks = [e.data for e in events if isinstance(e.data, dict) and e.data.get("choices")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    endings = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert text == expected_reply(8) and endings == ["stop"], "the text once, one ending, not the refusal"
    attempts = fake.outcomes_for(message)
    assert [o["model"] for o in attempts] == ["claude", "backup"]
    assert attempts[1]["messages"] > attempts[0]["messages"], "continued from the delivered text"


def test_the_responses_and_messages_apis_fall_back_alike(server, fake) -> None:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30) as sdk:
        message = _ask("@refusal=2 @tokens=4", "careful")
        response = sdk.responses.create(model="careful", input=message)
        assert response.output_text == expected_reply(4) and response.model == "backup"
        streamed = _ask("@refusal=1 @tokens=4", "claude")
        with sdk.responses.stream(model="claude", input=streamed) as events:
            final = events.get_final_response()
        assert final.output_text == expected_reply(4) and final.status == "completed"
    client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    asked = _ask("@refusal=1 @tokens=5", "claude")
    reply = client.messages.create(model="claude", max_tokens=50, messages=[{"role": "user", "content": asked}])
    assert reply.stop_reason == "end_turn" and reply.content[0].text == expected_reply(5)
    refused = [{"role": "user", "content": _ask("@refusal=2 @tokens=5", "careful")}]
    with client.messages.stream(model="careful", max_tokens=50, messages=refused) as events:
        final = events.get_final_message()
    assert final.stop_reason == "end_turn" and final.content[0].text == expected_reply(5)
    client.close()


def test_without_the_setting_or_a_fallback_left_a_refusal_is_passed_on(sdk, fake) -> None:
    message = _ask("@refusal=2", "strict")
    answer = sdk.chat.completions.create(model="strict", messages=[{"role": "user", "content": message}])
    assert answer.model == "strict" and answer.choices[0].message.refusal == "no0 no1 "
    assert _models(fake, message) == ["strict"], "asked once: a refusal is no failure to retry"
    filtered = _ask("@tokens=2 @finish=content_filter", "strict")
    answer = sdk.chat.completions.create(model="strict", messages=[{"role": "user", "content": filtered}])
    assert answer.choices[0].finish_reason == "content_filter" and _models(fake, filtered) == ["strict"]
    alone = _ask("@refusal=2", "careful")
    answer = sdk.chat.completions.create(
        model="careful", messages=[{"role": "user", "content": alone}], extra_body={"fallbacks": []}
    )
    assert answer.model == "careful" and answer.choices[0].message.refusal == "no0 no1 ", "no fallback left"


def test_anthropics_fallbacks_field_and_beta_header_reach_an_anthropic_server_as_sent(server, fake) -> None:
    asked = _ask("@tokens=3", "claude")
    body = {
        "model": "claude",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": asked}],
        "fallbacks": [{"model": "claude-backup"}],
    }
    headers = {"anthropic-beta": "model-fallbacks-2026-10-01", "anthropic-version": "2023-06-01"}
    answer = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.headers["x-chatwait-unknown-fields"] == "fallbacks"
    (outcome,) = fake.outcomes_for(asked)
    assert outcome["body"]["fallbacks"] == [{"model": "claude-backup"}]
    assert "model-fallbacks-2026-10-01" in outcome["headers"]["anthropic-beta"]
    elsewhere = _ask("@tokens=3", "strict")
    strict = {**body, "model": "strict", "messages": [{"role": "user", "content": elsewhere}]}
    over_openai = httpx.post(f"{server.url}/v1/messages", json=strict, headers=headers, timeout=30)
    assert over_openai.status_code == 200 and over_openai.headers["x-chatwait-unknown-fields"] == "fallbacks"
    (sent,) = fake.outcomes_for(elsewhere)
    assert "fallbacks" not in json.dumps(sent.get("body", {})), "left out where the server speaks another API"
