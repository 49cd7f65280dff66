"""Cache-affine routing that remembers: a conversation's later turns go to the server that answered
its first one (which holds its prompt cache), across the workers and instances of a deployment on
Redis, over chat completions (text and tool calls sent back) and the Responses API's chains. Two
fake upstreams serve one model; each conversation's turns are told apart by a tag."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env

pytestmark = pytest.mark.integration

CONVERSATIONS = 16
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture(scope="module")
def deployment(fake, fake2, redis_server) -> Iterator[list[ChatWaitServer]]:
    """Two instances (two workers and one) on one Redis, both servers behind each."""
    env = server_env(
        f"{fake.base_url},{fake2.base_url}", STREAM_STORE="redis", REDIS_URL=redis_server.url, WEB_CONCURRENCY="2"
    )
    started = [ChatWaitServer(env), ChatWaitServer({**env, "WEB_CONCURRENCY": "1"})]
    yield started
    for running in started:
        running.stop()


def _server_of(fakes: list[FakeUpstream], tag: str) -> list[int]:
    """Which fake answered each request whose last user message starts with `tag`, in order."""
    found = []
    for index, upstream in enumerate(fakes):
        found += [(o["started"], index) for o in upstream.stats()["outcomes"] if o["message"].startswith(tag)]
    return [index for _, index in sorted(found)]


def _clients(deployment: list[ChatWaitServer]) -> list[openai.OpenAI]:
    return [openai.OpenAI(base_url=f"{s.url}/v1", api_key="unused", max_retries=0, timeout=30) for s in deployment]


def test_every_later_turn_goes_to_the_server_of_the_first_across_workers_and_instances(deployment, fake, fake2) -> None:
    clients = _clients(deployment)
    for n in range(CONVERSATIONS):
        tag = f"conv-{uuid.uuid4().hex[:10]}"
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"{tag} first @tokens=3"}]
        for turn in range(3):  # each turn on another instance
            answer = clients[(n + turn) % 2].chat.completions.create(model=FAKE_MODEL, messages=messages)
            messages += [answer.choices[0].message.model_dump(exclude_none=True)]
            messages.append({"role": "user", "content": f"{tag} turn {turn + 2} @tokens=2"})
        served = _server_of([fake, fake2], tag)
        assert len(served) == 3 and len(set(served)) == 1, f"{tag}: turns ran on {served}"
    for client in clients:
        client.close()


def test_a_tool_calls_conversation_and_a_responses_chain_stay_on_their_server(deployment, fake, fake2) -> None:
    clients = _clients(deployment)
    for n in range(6):
        tag = f"tools-{uuid.uuid4().hex[:10]}"
        messages = [{"role": "user", "content": f"{tag} weather in Oslo?"}]
        first = clients[n % 2].chat.completions.create(model=FAKE_MODEL, messages=messages, tools=[WEATHER])
        call = first.choices[0].message
        messages += [call.model_dump(exclude_none=True)]
        messages.append({"role": "tool", "tool_call_id": call.tool_calls[0].id, "content": "sunny"})
        clients[(n + 1) % 2].chat.completions.create(model=FAKE_MODEL, messages=messages, tools=[WEATHER])
        chain = f"chain-{uuid.uuid4().hex[:10]}"
        started = clients[n % 2].responses.create(model=FAKE_MODEL, input=f"{chain} plan @tokens=3")
        again = clients[(n + 1) % 2].responses.create(
            model=FAKE_MODEL, previous_response_id=started.id, input=f"{chain} more @tokens=2"
        )
        clients[n % 2].responses.create(model=FAKE_MODEL, previous_response_id=again.id, input=f"{chain} end")
        for name in (tag, chain):
            served = _server_of([fake, fake2], name)
            assert len(set(served)) == 1, f"{name}: turns ran on {served}"
    for client in clients:
        client.close()
