"""The whole Responses API through the `openai` SDK and the Agents SDK, on both stream stores:
every parameter accepted, echoed and passed on (the fake upstream records what it was sent);
the Response object checked against OpenAI's published schema in every state and every event
that carries it; input items and input tokens; the Conversations API and `conversation`; the
one visibility rule of a response created with store false."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import httpx
import openai
import pytest

from ..conftest import FAKE_MODEL
from ..openai_response_schema import check_events, check_response
from ..sse import expected_reply, responses_events

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores


def unique(text: str) -> str:
    return f"{uuid.uuid4().hex} {text}"


def _options_sent(fake, message: str) -> dict:
    return fake.outcomes_for(message)[-1].get("options", {})


def test_every_parameter_is_accepted_echoed_and_passed_on(sdk, fake) -> None:
    message = unique("@tokens=3")
    raw = sdk.responses.with_raw_response.create(
        model=FAKE_MODEL,
        input=message,
        reasoning={"effort": "low", "summary": "auto"},
        text={"verbosity": "low"},
        service_tier="flex",
        prompt_cache_key="cache-1",
        safety_identifier="user-1",
        top_logprobs=2,
        include=["message.output_text.logprobs", "reasoning.encrypted_content"],
        max_tool_calls=3,
        truncation="auto",
        extra_body={"presence_penalty": 0.5, "frequency_penalty": 0.25},
    )
    sent = _options_sent(fake, message)
    assert (
        sent.items()
        >= {
            "reasoning_effort": "low",
            "verbosity": "low",
            "service_tier": "flex",
            "prompt_cache_key": "cache-1",
            "safety_identifier": "user-1",
            "logprobs": True,
            "top_logprobs": 2,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
        }.items()
    ), sent
    found, response = raw.http_response.json(), raw.parse()
    check_response(found)
    assert found["reasoning"] == {"effort": "low", "summary": "auto"} and found["text"]["verbosity"] == "low"
    assert (found["service_tier"], found["prompt_cache_key"], found["safety_identifier"]) == (
        "flex",
        "cache-1",
        "user-1",
    )
    assert (found["top_logprobs"], found["max_tool_calls"], found["truncation"]) == (2, 3, "auto")
    assert (found["presence_penalty"], found["frequency_penalty"]) == (0.5, 0.25)
    logprobs = response.output[0].content[0].logprobs
    assert [entry.token for entry in logprobs] == [piece for piece in expected_reply(3).split(" ") if piece] or logprobs
    assert len(logprobs) == 3 and all(len(entry.top_logprobs) == 2 for entry in logprobs)


def test_defaults_are_numbers_and_completed_at_is_set_at_the_end(sdk) -> None:
    raw = sdk.responses.with_raw_response.create(model=FAKE_MODEL, input="@tokens=2")
    found, response = raw.http_response.json(), raw.parse()
    check_response(found)
    assert (found["temperature"], found["top_p"], found["presence_penalty"], found["frequency_penalty"]) == (1, 1, 0, 0)
    assert found["service_tier"] == "default" and found["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    assert found["completed_at"] >= found["created_at"] and found["conversation"] is None
    assert response.output[0].content[0].logprobs == [], "log probabilities only where asked for"


def test_the_object_conforms_in_every_state_and_every_event(server, sdk) -> None:
    with httpx.Client(timeout=30) as http:
        with http.stream(
            "POST", f"{server.url}/v1/responses", json={"model": FAKE_MODEL, "input": "@tokens=3", "stream": True}
        ) as streamed:
            check_events(responses_events(streamed.read()))
        with http.stream(
            "POST",
            f"{server.url}/v1/responses",
            json={"model": FAKE_MODEL, "input": "@tokens=3 @fault=errorchunk@1", "stream": True},
        ) as failing:
            events = responses_events(failing.read())
        check_events(events)
        assert events[-1].event == "response.failed" and events[-1].data["response"]["completed_at"] is None
    incomplete = _raw(
        sdk.responses.with_raw_response.create(model=FAKE_MODEL, input="@tokens=2 @finish=length", max_output_tokens=2)
    )
    assert incomplete["status"] == "incomplete" and incomplete["completed_at"] is None
    body = {"model": FAKE_MODEL, "input": "@tokens=40 @delay_ms=50", "background": True}
    background = _raw(sdk.responses.with_raw_response.create(**body))
    assert _raw(sdk.responses.with_raw_response.cancel(background["id"]))["status"] == "cancelled"
    _raw(sdk.responses.with_raw_response.retrieve(background["id"]))
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.responses.create(model=FAKE_MODEL, input=unique("@fault=401"))
    assert failed.value.status_code >= 500


def _raw(answered) -> dict:
    """The object as sent (not as the SDK fills it in), once checked against OpenAI's schema."""
    found = answered.http_response.json()
    check_response(found)
    return found


def test_input_items_are_listed_a_page_at_a_time(sdk) -> None:
    given = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "second @tokens=2", "id": "msg_mine"},
    ]
    response = sdk.responses.create(model=FAKE_MODEL, input=given)
    listed = sdk.responses.input_items.list(response.id)
    assert listed.data[0].id == "msg_mine", "newest first, the client's id kept"
    oldest_first = sdk.responses.input_items.list(response.id, order="asc").data
    assert [(item.role, item.content[0].type) for item in oldest_first] == [
        ("developer", "input_text"),
        ("user", "input_text"),
        ("assistant", "output_text"),
        ("user", "input_text"),
    ]
    paged = list(sdk.responses.input_items.list(response.id, order="asc", limit=1))  # the SDK follows `after`
    assert [item.id for item in paged] == [item.id for item in oldest_first]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.input_items.list(response.id, limit=101)
    assert refused.value.body["param"] == "limit"


def test_input_tokens_count_what_a_create_would_send(sdk) -> None:
    short = sdk.responses.input_tokens.count(model=FAKE_MODEL, input="Hello there")
    longer = sdk.responses.input_tokens.count(
        model=FAKE_MODEL, input="Hello there", instructions="Answer in verse. " * 20
    )
    assert 0 < short.input_tokens < longer.input_tokens and short.object == "response.input_tokens"
    first = sdk.responses.create(model=FAKE_MODEL, input="Hello there @tokens=4")
    chained = sdk.responses.input_tokens.count(model=FAKE_MODEL, input="Hello there", previous_response_id=first.id)
    assert chained.input_tokens > short.input_tokens
    with pytest.raises(openai.NotFoundError):
        sdk.responses.input_tokens.count(model=FAKE_MODEL, input="x", previous_response_id="resp_nope")
    alone = sdk.responses.input_tokens.count(model=FAKE_MODEL, previous_response_id=first.id)
    assert 0 < alone.input_tokens < chained.input_tokens, "input may be left out when the turns come from a chain"
    conversation = sdk.conversations.create(items=[{"role": "user", "content": "Hello there"}])
    assert sdk.responses.input_tokens.count(model=FAKE_MODEL, conversation=conversation.id).input_tokens > 0
    with pytest.raises(openai.BadRequestError) as nothing:
        sdk.responses.input_tokens.count(model=FAKE_MODEL)
    assert nothing.value.body["param"] == "input"


def test_a_response_not_stored_is_resumable_for_its_events_and_nothing_else(server, sdk) -> None:
    response = sdk.responses.create(model=FAKE_MODEL, input="@tokens=2", store=False)
    with httpx.Client(timeout=30) as http:
        replay = http.get(f"{server.url}/v1/responses/{response.id}", params={"stream": "true"})
        assert replay.status_code == 200 and "response.completed" in replay.text
    for refused in (
        lambda: sdk.responses.retrieve(response.id),
        lambda: sdk.responses.input_items.list(response.id),
        lambda: sdk.responses.cancel(response.id),
        lambda: sdk.responses.delete(response.id),
        lambda: sdk.responses.create(model=FAKE_MODEL, input="more", previous_response_id=response.id),
        lambda: sdk.responses.create(model=FAKE_MODEL, input=[{"type": "item_reference", "id": response.output[0].id}]),
    ):
        with pytest.raises(openai.NotFoundError) as gone:
            refused()
        assert gone.value.body["code"] == "response_not_found"


def test_the_conversations_api_keeps_items_and_a_response_appends_its_turn(sdk, fake) -> None:
    conversation = sdk.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}], metadata={"topic": "names"}
    )
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "names"}
    assert sdk.conversations.retrieve(conversation.id).created_at == conversation.created_at
    assert sdk.conversations.update(conversation.id, metadata={"topic": "greetings"}).metadata == {"topic": "greetings"}
    message = unique("What is my name? @tokens=3")
    response = sdk.responses.create(model=FAKE_MODEL, input=message, conversation=conversation.id)
    assert response.conversation.id == conversation.id
    assert fake.outcomes_for(message)[-1]["messages"] == 2, "the conversation's item came before the input"
    items = sdk.conversations.items.list(conversation.id, order="asc").data  # in place once the answer came
    assert [item.type for item in items] == ["message"] * 3 and items[-1].id == response.output[0].id
    assert items[-1].content[0].text == response.output_text and items[1].content[0].text == message
    added = sdk.conversations.items.create(conversation.id, items=[{"role": "user", "content": "More."}])
    assert sdk.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id).id == added.data[0].id
    sdk.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
    assert len(sdk.conversations.items.list(conversation.id).data) == 3
    with pytest.raises(openai.BadRequestError) as both:
        sdk.responses.create(
            model=FAKE_MODEL, input="x", conversation=conversation.id, previous_response_id=response.id
        )
    assert both.value.body["param"] == "conversation"
    assert sdk.conversations.delete(conversation.id).deleted
    with pytest.raises(openai.NotFoundError) as gone:
        sdk.responses.create(model=FAKE_MODEL, input="x", conversation=conversation.id)
    assert gone.value.body["code"] == "conversation_not_found"


def test_a_streamed_response_with_truncation_auto_appends_to_a_long_conversation(server, sdk, fake) -> None:
    conversation = sdk.conversations.create(
        items=[{"role": "user", "content": f"turn {n} " + "x" * 9000} for n in range(4)]
    )
    message = unique("@tokens=2")
    with sdk.responses.stream(
        model=FAKE_MODEL, input=message, conversation={"id": conversation.id}, truncation="auto"
    ) as stream:
        final = stream.get_final_response()
    assert final.status == "completed" and fake.outcomes_for(message)[-1]["messages"] < 5, "the oldest turns dropped"
    assert len(sdk.conversations.items.list(conversation.id).data) == 6, "appended before the last event; none dropped"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=FAKE_MODEL, input="more", conversation=conversation.id)
    assert refused.value.body["code"] == "context_length_exceeded" and "conversation" in refused.value.body["message"]


def _agents(server, play):
    """`play()` on its own event loop, with the Agents SDK's default client pointed at `server`."""
    from agents import set_default_openai_client, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)

    async def run():
        async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
            set_default_openai_client(client, use_for_tracing=False)
            return await play(client)

    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result(timeout=120)


def test_the_agents_sdk_runs_with_truncation_auto_and_a_conversations_session(server, fake) -> None:
    from agents import Agent, ModelSettings, OpenAIConversationsSession, OpenAIResponsesModel, Runner

    first, second = unique("I am Ada. @tokens=2"), unique("Who am I? @tokens=3")

    async def play(client):
        model = OpenAIResponsesModel(model=FAKE_MODEL, openai_client=client)
        agent = Agent(name="a", instructions="Be brief.", model=model, model_settings=ModelSettings(truncation="auto"))
        session = OpenAIConversationsSession(openai_client=client)
        one = await Runner.run(agent, first, session=session)
        two = await Runner.run(agent, second, session=session)
        return one.final_output, two.final_output, await session.get_items()

    one, two, items = _agents(server, play)
    assert (one, two) == (expected_reply(2), expected_reply(3))
    assert fake.outcomes_for(second)[-1]["messages"] == 4, "instructions, the first turn (2 items), the second input"
    assert [item.get("role") for item in items] == ["user", "assistant", "user", "assistant"]


def test_streamed_log_probabilities_ride_on_each_text_delta(server) -> None:
    body = {"model": FAKE_MODEL, "input": unique("@tokens=3"), "stream": True, "top_logprobs": 1}
    body["include"] = ["message.output_text.logprobs"]
    with httpx.Client(timeout=30) as http, http.stream("POST", f"{server.url}/v1/responses", json=body) as streamed:
        events = responses_events(streamed.read())
    deltas = [event.data for event in events if event.event == "response.output_text.delta"]
    assert [len(delta["logprobs"]) for delta in deltas] == [1, 1, 1]
    assert all(len(delta["logprobs"][0]["top_logprobs"]) == 1 for delta in deltas)
    (done,) = [event.data for event in events if event.event == "response.output_text.done"]
    assert done["logprobs"] == [delta["logprobs"][0] for delta in deltas]
    assert events[-1].data["response"]["output"][0]["content"][0]["logprobs"] == done["logprobs"]
    resumed = httpx.get(
        f"{server.url}/v1/responses/{events[0].data['response']['id']}",
        params={"stream": "true", "starting_after": "3"},
        timeout=30,
    )
    assert 'logprobs":[{' in resumed.text, "a resume (on either worker) writes them again"


def test_a_streamed_response_that_fails_before_its_first_token_answers_with_the_http_status(sdk) -> None:
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.responses.create(model=FAKE_MODEL, input=unique("@fault=429 @retry_after=0"), stream=True)
    assert refused.value.body["code"] == "rate_limit_exceeded" and "retry-after" in refused.value.response.headers
    with pytest.raises(openai.BadRequestError) as too_long:
        sdk.responses.create(model=FAKE_MODEL, input=unique("@fault=context"), stream=True)
    assert too_long.value.body["code"] == "context_length_exceeded" and too_long.value.body["param"] == "input"
    background = sdk.responses.create(model=FAKE_MODEL, input=unique("@fault=401"), stream=True, background=True)
    events = list(background)
    assert events[0].type == "response.created" and events[-1].type == "response.failed", "background: 200 at once"
