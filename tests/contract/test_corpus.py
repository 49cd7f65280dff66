"""What today's clients send, replayed: every request body recorded from a real client
(tests/corpus/*.json: Codex CLI, Claude Code, the Vercel AI SDK over OpenAI and Anthropic,
openai-python/node, anthropic, LangChain, the Agents SDK; `python -m tests.corpus.record` records
them again) is answered whole, never refused, by ChatWait over an OpenAI-compatible upstream and
over a Messages API one; a Messages body reaches the Messages API upstream as the client sent it,
fields ChatWait does not know included (its `max_tokens` at most MAX_TOKENS)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, anthropic_upstream, server_env
from ..node import CODEX_MODELS
from ..sse import parse

CORPUS = Path(os.environ.get("CHATWAIT_CORPUS") or Path(__file__).resolve().parents[1] / "corpus")  # or the newest
RECORDED = [
    pytest.param(record["client"], index, request, id=f"{record['client']}-{record['version']}-{index}")
    for record in (json.loads(path.read_text()) for path in sorted(CORPUS.glob("*.json")))
    for index, request in enumerate(record["requests"])
]
ENDINGS = {"[DONE]", "response.completed", "message_stop"}


@pytest.fixture(scope="module", params=["openai", "anthropic"])
def server(fake: FakeUpstream, request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[ChatWaitServer]:
    """The agents' prompts are some 20,000 tokens; Codex's own model names allowed too."""
    models = ",".join((FAKE_MODEL, "other-model", *CODEX_MODELS))
    if request.param == "anthropic":
        listing = anthropic_upstream(fake, tmp_path_factory.mktemp("corpus"), models.split(","))
        env = server_env("", UPSTREAMS_FILE=str(listing), MAX_INPUT_TOKENS="200000", ALLOWED_MODELS=models)
    else:
        env = server_env(fake.base_url, MAX_INPUT_TOKENS="200000", ALLOWED_MODELS=models)
    running = ChatWaitServer(env)
    running.upstream = request.param
    yield running
    running.stop()


def test_the_corpus_holds_every_client_of_the_issue() -> None:
    clients = {param.values[0] for param in RECORDED}
    expected = {"codex", "codex-default-model", "claude-code", "vercel-anthropic", "vercel-openai-responses"}
    assert expected | {"openai-agents"} <= clients


@pytest.mark.parametrize(("client", "index", "recorded"), RECORDED)
def test_a_recorded_request_is_answered_whole(server, fake, client: str, index: int, recorded: dict) -> None:
    body = recorded["body"]
    answer = httpx.post(server.url + recorded["path"], json=body, timeout=60)
    assert answer.status_code == 200, f"{client} #{index}: {answer.text[:500]}"
    if body.get("stream"):
        events, _ = parse(answer.content)
        last = events[-1].data if events else None
        ending = last if last == "[DONE]" else (last or {}).get("type")
        assert ending in ENDINGS, f"{client} #{index} ended with {ending!r}"
    else:
        assert answer.json()["object" if "object" in answer.json() else "type"] in {
            "chat.completion", "response", "message"}  # fmt: skip
    if server.upstream == "anthropic" and recorded["path"].startswith("/v1/messages"):
        sent = fake.stats()["outcomes"][-1]["body"]
        kept = {key: body[key] for key in body if key not in ("model", "stream", "max_tokens")}  # at most MAX_TOKENS
        assert {key: sent.get(key) for key in kept} == kept, "the body passed on as the client sent it"
        assert sent["max_tokens"] <= body["max_tokens"]
