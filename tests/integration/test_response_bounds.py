"""What a Responses API client can make ChatWait keep, bounded: a chain of `previous_response_id`
meets the bounds of a direct input before anything is stored or sent (or loses its oldest turns
with `truncation: "auto"`), and each client key keeps at most MAX_STORED_RESPONSES finished
stored responses (Redis: two gateways share the bound)."""

from __future__ import annotations

import contextlib
import json
import time
import uuid

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer

from ..conformance import conform
from ..conftest import FAKE_MODEL, gateways_of, server_env

pytestmark = pytest.mark.integration

FIRST_KEY = "bounds-first-0123456789abcdef"
SECOND_KEY = "bounds-second-0123456789abcdef"


def unique(text: str) -> str:
    return f"{uuid.uuid4().hex} {text}"


@pytest.fixture
def chain_server(start_store_server) -> ChatWaitServer:
    return start_store_server(MAX_HISTORY_MESSAGES="4", MAX_CONVERSATION_CHARS="3000")


def _sdk(server: ChatWaitServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30)


def _chain(sdk: openai.OpenAI, inputs: list[str]) -> str:
    """The id of the last of responses chained one after the other."""
    previous = None
    for text in inputs:
        previous = sdk.responses.create(model=FAKE_MODEL, input=text, previous_response_id=previous).id
    return previous


def _refused_chain(sdk: openai.OpenAI, previous: str, message: str, fake) -> dict:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=FAKE_MODEL, input=message, previous_response_id=previous)
    body = refused.value.response.json()
    conform("OpenAIError", body)
    assert body["error"]["code"] == "context_length_exceeded" and body["error"]["param"] == "input"
    assert 'truncation "auto"' in body["error"]["message"] and "previous_response_id" in body["error"]["message"]
    assert fake.outcomes_for(message) == [], "nothing was sent upstream"
    return body["error"]


def test_a_chain_over_the_item_bound_is_refused_before_anything_is_stored_or_sent(chain_server, fake) -> None:
    with _sdk(chain_server) as sdk:
        previous = _chain(sdk, [unique(f"turn {n} @tokens=2") for n in range(3)])  # 6 items: at the bound
        error = _refused_chain(sdk, previous, unique("turn 3 @tokens=2"), fake)
        assert "7 items" in error["message"] and "MAX_HISTORY_MESSAGES + 2" in error["message"]
        assert sdk.responses.retrieve(previous).status == "completed", "the chain itself is kept"


def test_a_chain_over_the_character_bound_is_refused(chain_server, fake) -> None:
    with _sdk(chain_server) as sdk:
        long = "x" * 1000  # each input alone is well within MAX_CONVERSATION_CHARS
        previous = _chain(sdk, [unique(f"@tokens=2 {long}") for _ in range(2)])
        error = _refused_chain(sdk, previous, unique(f"@tokens=2 {long}"), fake)
        assert "MAX_CONVERSATION_CHARS" in error["message"]


def test_truncation_auto_drops_the_oldest_turns_and_answers(chain_server, fake) -> None:
    with _sdk(chain_server) as sdk:
        oldest = unique("oldest @tokens=2")
        previous = _chain(sdk, [oldest, unique("middle @tokens=2"), unique("newest @tokens=2")])
        asked = unique("@reply=request")
        fitted = sdk.responses.create(
            model=FAKE_MODEL, input=asked, previous_response_id=previous, truncation="auto", instructions="Be brief."
        )
        assert fitted.status == "completed" and fitted.truncation == "auto"
        sent = json.loads(fitted.output_text)["messages"]
        assert sent[0] == {"role": "system", "content": "Be brief."}, "the instructions stay"
        turns = sent[1:]
        assert len(turns) <= 6 and turns[0]["role"] == "user" and turns[-1]["content"] == asked
        assert oldest not in json.dumps(turns), "the oldest turn went first"
        further = sdk.responses.create(
            model=FAKE_MODEL, input=unique("@tokens=1"), previous_response_id=fitted.id, truncation="auto"
        )
        assert further.status == "completed", "a truncated chain goes on"
        with pytest.raises(openai.BadRequestError):
            sdk.responses.create(model=FAKE_MODEL, input="x", previous_response_id=fitted.id, truncation="sometimes")


@pytest.fixture(params=["memory", "redis"])
def key_gateways(request, fake, tmp_path):
    """Gateways with two client keys, MAX_STORED_RESPONSES=50, MAX_CONVERSATIONS=3 and
    MAX_CONVERSATION_ITEMS=4: one on the memory store, or two (2 + 1 workers) on one Redis."""
    env = server_env(
        fake.base_url,
        CHATWAIT_API_KEYS=f"{FIRST_KEY},{SECOND_KEY}",
        MAX_STORED_RESPONSES="50",
        MAX_CONVERSATIONS="3",
        MAX_CONVERSATION_ITEMS="4",
    )
    servers = gateways_of(request, env, request.param)
    yield servers
    for server in servers:
        server.stop()


def _kept(servers: list[ChatWaitServer], key: str, ids: list[str]) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=servers[-1].url, headers=headers, timeout=30) as client:
        return [rid for rid in ids if client.get(f"/v1/responses/{rid}").status_code == 200]


def test_each_key_keeps_its_newest_stored_responses_within_the_bound(key_gateways) -> None:
    made: dict[str, list[str]] = {FIRST_KEY: [], SECOND_KEY: []}
    for n, key in enumerate([FIRST_KEY] * 120 + [SECOND_KEY] * 5):
        with _sdk(key_gateways[n % len(key_gateways)], key) as sdk:
            made[key].append(sdk.responses.create(model=FAKE_MODEL, input="@tokens=2").id)
    deadline = time.monotonic() + 15
    while len(kept := _kept(key_gateways, FIRST_KEY, made[FIRST_KEY])) > 50 and time.monotonic() < deadline:
        time.sleep(0.5)  # Redis: each owner lists its own at its next sweep
    assert kept == made[FIRST_KEY][-50:], "the newest 50, the oldest evicted first"
    assert _kept(key_gateways, SECOND_KEY, made[SECOND_KEY]) == made[SECOND_KEY], "another key keeps its own"


def test_each_key_keeps_its_most_recently_changed_conversations_and_their_newest_items(key_gateways) -> None:
    first = [_sdk(key_gateways[n % len(key_gateways)], FIRST_KEY) for n in range(2)]
    other = _sdk(key_gateways[-1], SECOND_KEY)
    mine = other.conversations.create(items=[{"role": "user", "content": "mine"}]).id
    made = [first[n % 2].conversations.create(items=[{"role": "user", "content": f"c{n}"}]).id for n in range(4)]
    first[1].conversations.items.create(made[1], items=[{"role": "user", "content": "touched"}])  # the other gateway's
    made.append(first[0].conversations.create().id)

    def kept(sdk: openai.OpenAI, ids: list[str]) -> list[str]:
        found = []
        for conversation_id in ids:
            with contextlib.suppress(openai.NotFoundError):
                found.append(sdk.conversations.retrieve(conversation_id).id)
        return found

    assert kept(first[1], made) == [made[1], made[3], made[4]], "the least recently changed went first"
    assert kept(other, [mine, *made]) == [mine], "another key keeps its own and sees none of these"
    for n in range(5):
        first[n % 2].conversations.items.create(
            made[4], items=[{"type": "message", "role": "user", "content": f"i{n}"}]
        )
    texts = [item.content[0].text for item in first[1].conversations.items.list(made[4], order="asc")]
    assert texts == ["i1", "i2", "i3", "i4"], "the newest MAX_CONVERSATION_ITEMS, written on either gateway"
    for sdk in (*first, other):
        sdk.close()


@pytest.mark.parametrize("mode", ["stream", "background"])
def test_truncation_auto_holds_streamed_and_in_the_background(chain_server, fake, mode) -> None:
    with _sdk(chain_server) as sdk:
        previous = _chain(sdk, [unique(f"turn {n} @tokens=2") for n in range(3)])  # 6 items: at the bound
        asked = unique("@tokens=2")
        asking = {"model": FAKE_MODEL, "input": asked, "previous_response_id": previous, "truncation": "auto"}
        if mode == "stream":
            with sdk.responses.stream(**asking) as streamed:
                final = streamed.get_final_response()
        else:
            final = sdk.responses.create(background=True, **asking)
            deadline = time.monotonic() + 30
            while final.status in ("queued", "in_progress") and time.monotonic() < deadline:
                time.sleep(0.05)
                final = sdk.responses.retrieve(final.id)
        assert final.status == "completed" and final.truncation == "auto"
        assert fake.outcomes_for(asked)[-1]["messages"] <= 6, "the oldest turn was dropped"
