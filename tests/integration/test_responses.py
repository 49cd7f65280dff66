"""The Responses API through the `openai` SDK and raw HTTP, on both stream stores (Redis: two
workers, so a resume, a poll or a cancel may land on the other one): create in every mode, the
event sequence, resume after a cut, background polling, cancel, chaining, deletion, errors."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer
from harness.proxy import CuttingProxy

from ..conftest import FAKE_MODEL, server_env, store_env
from ..sse import expected_reply, iter_events, responses_events

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores

CLIENTS = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
OPENING = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
CLOSING = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


def unique(text: str) -> str:
    return f"{uuid.uuid4().hex} {text}"


def _until_ended(sdk: openai.OpenAI, response_id: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while True:
        found = sdk.responses.retrieve(response_id)
        if found.status not in ("queued", "in_progress") or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_response_without_streaming_is_the_whole_reply(sdk) -> None:
    response = sdk.responses.create(model=FAKE_MODEL, input="Hello @tokens=7", instructions="Be brief.")
    assert response.status == "completed" and response.output_text == expected_reply(7)
    assert response.id.startswith("resp_") and response.instructions == "Be brief."
    assert response.usage.output_tokens == 7 and response.usage.total_tokens == response.usage.input_tokens + 7
    assert sdk.responses.retrieve(response.id).output_text == expected_reply(7), "stored, and retrievable"


def test_a_warmup_over_http_is_an_empty_completed_response_to_chain_from(sdk, fake) -> None:
    before = fake.stats()["requests"]
    warm = sdk.responses.create(model=FAKE_MODEL, input=unique("context"), extra_body={"generate": False})
    assert warm.status == "completed" and warm.output == [] and warm.usage.output_tokens == 0
    assert fake.stats()["requests"] == before, "nothing generated"
    assert sdk.responses.retrieve(warm.id).output == []
    turn = sdk.responses.create(model=FAKE_MODEL, previous_response_id=warm.id, input="@reply=request")
    assert [m["role"] for m in json.loads(turn.output_text)["messages"]] == ["user", "user"], "no reply it never had"


def test_a_streamed_response_is_the_whole_event_sequence_numbered_by_its_sse_ids(server) -> None:
    body = {"model": FAKE_MODEL, "input": "Hi @tokens=5", "stream": True, "metadata": {"app": "tests"}}
    reply = httpx.post(f"{server.url}/v1/responses", json=body, timeout=30)
    events = responses_events(reply.content)
    assert [e.event for e in events] == [*OPENING, *["response.output_text.delta"] * 5, *CLOSING, "response.completed"]
    assert [e.id for e in events] == list(range(len(events))), "one id per event, contiguous from 0"
    assert all(e.data["sequence_number"] == e.id and e.data["type"] == e.event for e in events)
    assert "".join(e.data["delta"] for e in events[4:9]) == expected_reply(5)
    final = events[-1].data["response"]
    assert final["status"] == "completed" and final["metadata"] == {"app": "tests"}
    assert final["output"][0]["content"][0]["text"] == expected_reply(5)
    assert final["usage"]["output_tokens"] == 5


def test_a_background_stream_cut_mid_way_resumes_exactly_with_starting_after(server, sdk, request) -> None:
    proxy = CuttingProxy(server.port)
    try:
        cut = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
        request.addfinalizer(cut.close)
        proxy.cut_next_stream(after_bytes=3000)
        stream = cut.responses.create(
            model=FAKE_MODEL, input=unique("Survive @tokens=60 @delay_ms=20"), background=True, stream=True
        )
        received = []
        with pytest.raises((httpx.HTTPError, openai.APIError)):
            for event in stream:
                received.append(event)
        assert proxy.cuts == 1 and 4 < len(received) < 60
        last = received[-1].sequence_number
        resumed = list(sdk.responses.retrieve(received[0].response.id, stream=True, starting_after=last))
        events = received + resumed
        assert [e.sequence_number for e in events] == list(range(len(events))), "nothing lost, nothing twice"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == expected_reply(60)
        assert [e.type for e in events].count("response.completed") == 1 and events[-1].type == "response.completed"
    finally:
        proxy.close()


def test_a_resume_inside_the_opening_or_closing_events_gets_the_rest_of_them(server, sdk) -> None:
    done = sdk.responses.create(model=FAKE_MODEL, input="@tokens=3")
    url = f"{server.url}/v1/responses/{done.id}"
    after_1 = responses_events(httpx.get(url, params={"stream": "true", "starting_after": "1"}).content)
    assert [e.id for e in after_1] == list(range(2, 11))
    after_8 = responses_events(httpx.get(url, params={"stream": "true"}, headers={"Last-Event-ID": "8"}).content)
    assert [e.event for e in after_8] == [CLOSING[2], "response.completed"]
    assert httpx.get(url, params={"stream": "true", "starting_after": "10"}).status_code == 204


def test_a_background_response_is_polled_to_its_end(sdk) -> None:
    started = sdk.responses.create(model=FAKE_MODEL, input=unique("@tokens=30 @delay_ms=10"), background=True)
    assert started.status in ("queued", "in_progress") and started.background is True
    ended = _until_ended(sdk, started.id)
    assert ended.status == "completed" and ended.output_text == expected_reply(30)


def test_cancel_stops_the_generation_and_keeps_its_partial_text(sdk, fake) -> None:
    message = unique("@tokens=2000 @delay_ms=10")
    started = sdk.responses.create(model=FAKE_MODEL, input=message, background=True)
    time.sleep(0.3)
    cancelled = sdk.responses.cancel(started.id)
    assert cancelled.status == "cancelled" and cancelled.usage.output_tokens > 0
    assert cancelled.output_text and expected_reply(2000).startswith(cancelled.output_text), "the partial text, kept"
    outcome = fake.wait_for_outcome(message, "client_closed")
    assert outcome["tokens"] < 2000, "the upstream request was closed"
    assert sdk.responses.cancel(started.id).status == "cancelled", "idempotent"
    assert sdk.responses.retrieve(started.id).status == "cancelled"


def test_previous_response_id_continues_the_stored_conversation(sdk) -> None:
    first = sdk.responses.create(model=FAKE_MODEL, input="One @tokens=2", instructions="Only for the first.")
    second = sdk.responses.create(
        model=FAKE_MODEL, input=[{"role": "user", "content": "Two @tokens=3"}], previous_response_id=first.id
    )
    third = sdk.responses.create(model=FAKE_MODEL, input="Three @reply=request", previous_response_id=second.id)
    asked = json.loads(third.output_text)
    assert [(m["role"], m["content"]) for m in asked["messages"]] == [
        ("user", "One @tokens=2"),
        ("assistant", expected_reply(2)),
        ("user", "Two @tokens=3"),
        ("assistant", expected_reply(3)),
        ("user", "Three @reply=request"),
    ], "instructions are not carried over"
    assert third.previous_response_id == second.id


def test_a_response_not_stored_cannot_be_fetched_or_continued(sdk) -> None:
    response = sdk.responses.create(model=FAKE_MODEL, input="@tokens=2", store=False)
    assert response.output_text == expected_reply(2) and response.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.responses.create(model=FAKE_MODEL, input="more", previous_response_id=response.id)
    assert refused.value.body["code"] == "response_not_found"


def test_delete_forgets_a_response(sdk) -> None:
    response = sdk.responses.create(model=FAKE_MODEL, input="@tokens=2")
    sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as gone:
        sdk.responses.retrieve(response.id)
    assert "previous_response_id" not in gone.value.body["message"] and gone.value.body["code"] == "response_not_found"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"include": ["file_search_call.everything"]}, "include[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input[0].content"),
        ({"background": True, "store": False}, "store"),
        ({"max_output_tokens": 10**9}, "max_output_tokens"),  # over any model's: more is lowered and said
    ],
)
def test_what_needs_a_feature_chatwait_lacks_is_a_400_naming_the_parameter(sdk, extra, param) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(**{"model": FAKE_MODEL, "input": "hi", **extra})
    assert refused.value.body["param"] == param, refused.value.body


def test_a_conversation_too_long_is_refused_naming_input_before_it_is_tokenised(sdk) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=FAKE_MODEL, input="Hi", instructions="x " * 200_000)
    assert refused.value.body["code"] == "context_length_exceeded" and refused.value.body["param"] == "input"
    assert "MAX_CONVERSATION_CHARS" in refused.value.body["message"]
    items = [{"role": "user", "content": "y" * 15_000}, {"role": "user", "content": "z" * 15_000}]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=FAKE_MODEL, input=items)
    assert "Drop the 1 oldest" in refused.value.body["message"]


def test_unknown_ids_are_404_in_openais_shape(sdk) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.responses.retrieve("resp_nope")
    assert unknown.value.body["code"] == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model=FAKE_MODEL, input="hi", previous_response_id="resp_nope")
    with pytest.raises(openai.NotFoundError):
        sdk.responses.cancel("resp_nope")


def test_a_failure_mid_reply_ends_with_response_failed(server) -> None:
    body = {"model": FAKE_MODEL, "input": unique("@tokens=10 @fault=reset@3"), "stream": True}
    events = responses_events(httpx.post(f"{server.url}/v1/responses", json=body, timeout=30).content)
    assert events[-1].event == "response.failed" and [e.id for e in events] == list(range(len(events)))
    failed = events[-1].data["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "upstream_interrupted"
    assert failed["output"][0]["content"][0]["text"] == expected_reply(3)


def test_the_events_of_a_live_response_are_followed_from_another_request(server, sdk) -> None:
    started = sdk.responses.create(model=FAKE_MODEL, input=unique("@tokens=40 @delay_ms=20"), background=True)
    with httpx.stream("GET", f"{server.url}/v1/responses/{started.id}", params={"stream": "true"}) as live:
        events = list(iter_events(live))
    events = [e for e in events if e.event != ":comment"]
    assert events[-1].data == "[DONE]", "the Open Responses end of stream"
    assert [e.id for e in events[:-1]] == list(range(48)) and events[-2].event == "response.completed"


def test_the_docs_helper_resumes_a_background_stream_cut_mid_reply(server, request) -> None:
    blocks = re.findall(r"```python\n(.*?)```", CLIENTS.read_text(encoding="utf-8"), re.DOTALL)
    source = next(block for block in blocks if "def resumable_response" in block)
    namespace: dict = {}
    exec(compile(source.split("\nclient = ")[0], "docs/clients.md", "exec"), namespace)  # the helper, not its usage
    proxy = CuttingProxy(server.port)
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
        request.addfinalizer(client.close)
        proxy.cut_next_stream(after_bytes=4000)
        events = list(
            namespace["resumable_response"](client, model=FAKE_MODEL, input=unique("@tokens=80 @delay_ms=10"))
        )
        assert proxy.cuts == 1
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == expected_reply(80)
        assert events[-1].type == "response.completed"
    finally:
        proxy.close()


def test_langchain_streams_a_reply_through_the_responses_api(server, request) -> None:
    from langchain_openai import ChatOpenAI

    http = httpx.Client(timeout=30)
    request.addfinalizer(http.close)
    chat = ChatOpenAI(
        model=FAKE_MODEL,
        base_url=f"{server.url}/v1",
        api_key="unused",
        use_responses_api=True,
        max_retries=0,
        http_client=http,
    )
    chunks = list(chat.stream("Hello @tokens=6"))
    assert "".join(chunk.text for chunk in chunks) == expected_reply(6)
    whole = chat.invoke("Again @tokens=4")
    assert whole.text == expected_reply(4) and whole.usage_metadata["output_tokens"] == 4


def test_a_finished_response_outlives_a_restart_of_every_instance(request, fake) -> None:
    """With Redis, a stored response is fetched, resumed and continued after every worker restarted."""
    env = server_env(fake.base_url, **store_env(request, "redis"))
    first = ChatWaitServer(env)
    try:
        with openai.OpenAI(base_url=f"{first.url}/v1", api_key="unused", max_retries=0, timeout=30) as before:
            done = before.responses.create(model=FAKE_MODEL, input=unique("@tokens=5"))
    finally:
        first.stop()
    second = ChatWaitServer(env)
    try:
        after = openai.OpenAI(base_url=f"{second.url}/v1", api_key="unused", max_retries=0, timeout=30)
        request.addfinalizer(after.close)
        assert after.responses.retrieve(done.id).output_text == expected_reply(5)
        rest = list(after.responses.retrieve(done.id, stream=True, starting_after=7))
        assert [e.sequence_number for e in rest] == list(range(8, 13)) and rest[-1].type == "response.completed"
        chained = after.responses.create(model=FAKE_MODEL, input="@reply=request", previous_response_id=done.id)
        assert [m["role"] for m in json.loads(chained.output_text)["messages"]] == ["user", "assistant", "user"]
    finally:
        second.stop()


def test_a_response_awaited_in_the_foreground_fails_with_the_http_status_and_an_error_object(server, sdk) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.responses.create(model=FAKE_MODEL, input=unique("@tokens=10 @fault=reset@3"))
    error = failed.value.body
    assert failed.value.status_code == 502 and error["code"] == "upstream_interrupted"
    assert error["type"] == "server_error" and error["message"] and "param" in error
    unavailable = httpx.post(f"{server.url}/v1/responses", json={"model": FAKE_MODEL, "input": unique("@fault=503")})
    assert unavailable.status_code == 503 and unavailable.json()["error"]["type"] == "server_error"
    started = sdk.responses.create(model=FAKE_MODEL, input=unique("@fault=503"), background=True)
    assert started.status in ("queued", "in_progress", "failed"), "a background one answers at once, as before"
