"""The Open Responses compliance points ChatWait missed, reproduced on both stream stores, with the
`openai` SDK and raw sockets: a tool output that answers no call is the client's mistake (a 400
naming its call_id, never sent upstream), a failed continuation evicts the `store: false` chain it
built on, a socket's chained turn echoes its previous_response_id, /v1/responses/compact needs a
model, and server-side compaction (`context_management`, or a `compaction_trigger` item) opens the
output with the compaction item and generates from the summary; besides, an input's
`configuration_update` items and an empty warmup."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import openai
import pytest

from app.apis.items.compaction import SUMMARY_PREFIX, WINDOW_MARK
from app.apis.responses.compaction import COMPACT_PROMPT

from ..conftest import FAKE_MODEL
from ..sse import responses_events
from .test_responses_socket import _turn
from .test_responses_tools import WEATHER

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores
COMPACT_AT = {"context_management": [{"type": "compaction", "compact_threshold": 1}]}


def _summaries(fake) -> int:
    """How many summaries the fake was asked for (its log keeps a request's last user message)."""
    return sum(o.get("message", "").startswith(COMPACT_PROMPT[:60]) for o in fake.stats()["outcomes"])


def _sent(text: str) -> dict[str, Any]:
    """What the model was sent, from a reply to `@reply=request`."""
    return json.loads(text)


def test_an_output_whose_call_id_answers_no_call_is_refused_by_name_and_not_sent(sdk, fake) -> None:
    marker = uuid.uuid4().hex
    orphan = {"type": "function_call_output", "call_id": "call_nowhere", "output": "sunny"}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=FAKE_MODEL, input=[{"role": "user", "content": marker}, orphan], tools=[WEATHER])
    assert refused.value.status_code == 400 and "call_nowhere" in refused.value.message
    assert refused.value.body["param"] == "input"
    assert not fake.outcomes_for(marker), "never sent upstream"
    first = sdk.responses.create(model=FAKE_MODEL, input="Weather?", tools=[WEATHER])
    (call,) = first.output
    answer = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    chained = sdk.responses.create(model=FAKE_MODEL, previous_response_id=first.id, input=[answer], tools=[WEATHER])
    assert chained.output_text == "The tool said: sunny", "a call earlier in the chain is a call"


def test_a_failed_continuation_evicts_the_sockets_chain_and_a_chained_turn_echoes_its_previous(sdk) -> None:
    with sdk.responses.connect() as conn:
        first = _turn(conn, input="Weather?", tools=[WEATHER], store=False)[-1].response
        (call,) = first.output
        answer = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        second = _turn(conn, previous_response_id=first.id, input=[answer], tools=[WEATHER], store=False)[-1].response
        assert second.previous_response_id == first.id, "the chain the socket kept, echoed"
        orphan = {"type": "function_call_output", "call_id": "call_nowhere", "output": "rain"}
        (failed,) = _turn(conn, previous_response_id=second.id, input=[orphan], tools=[WEATHER], store=False)
        assert failed.type == "error" and "call_nowhere" in failed.message
        (evicted,) = _turn(conn, previous_response_id=second.id, input="and now?", store=False)
        assert evicted.type == "error" and evicted.code == "previous_response_not_found"
        again = _turn(conn, previous_response_id=first.id, input=[answer], tools=[WEATHER], store=False)[-1]
        assert again.response.output_text == "The tool said: sunny", "the chain before the failed turn stays"


def test_compact_needs_a_model(http: httpx.Client) -> None:
    refused = http.post("/v1/responses/compact", json={"input": "Summarise this."})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "model"
    assert http.post("/v1/responses/compact", json={"model": FAKE_MODEL, "input": "Hi"}).status_code == 200


def test_server_side_compaction_opens_the_output_with_its_item_and_generates_from_the_summary(sdk, fake) -> None:
    marker = uuid.uuid4().hex
    turns = [
        {"role": "user", "content": f"{marker} plan the trip"},
        {"role": "assistant", "content": "Where to?"},
        {"role": "user", "content": "Rome @reply=request"},
    ]
    summaries = _summaries(fake)
    answered = sdk.responses.create(model=FAKE_MODEL, input=turns, instructions="Be exact.", extra_body=COMPACT_AT)
    item, message = answered.output
    assert item.type == "compaction" and item.id.startswith("cmp_") and item.encrypted_content.startswith(WINDOW_MARK)
    summary = item.encrypted_content.removeprefix(WINDOW_MARK)
    sent = _sent(message.content[0].text)["messages"]
    assert [m["role"] for m in sent] == ["system", "assistant", "user"], "instructions, summary, last turn"
    assert sent[1]["content"] == SUMMARY_PREFIX + summary and marker not in json.dumps(sent)
    assert _summaries(fake) == summaries + 1, "the model was asked for the summary first"
    assert answered.usage.input_tokens > 0

    # Appended to the input as the docs say, the compaction stands for all before it.
    items = [entry.model_dump(exclude_none=True, warnings=False) for entry in answered.output]
    question = {"role": "user", "content": "@reply=request"}
    later = sdk.responses.create(model=FAKE_MODEL, input=[*turns, *items, question])
    sent = _sent(later.output_text)["messages"]
    assert [m["role"] for m in sent] == ["assistant", "assistant", "user"], "summary, reply, the new question"
    assert marker not in json.dumps(sent)


def test_a_compacted_stream_resumes_byte_for_byte_and_chains(sdk, http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "input": "Plan the trip @tokens=5", "stream": True, **COMPACT_AT}
    whole = http.post("/v1/responses", json=body)
    events = responses_events(whole.content)
    data = [event.data for event in events]
    assert [d["type"] for d in data[:4]] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.output_item.done"
    ]  # fmt: skip
    assert data[2]["item"]["type"] == "compaction" and data[2]["output_index"] == 0
    assert all(d.get("output_index", 1) >= 1 for d in data[4:]), "the reply's items after it"
    assert [e.id for e in events] == list(range(len(events)))
    final = data[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["compaction", "message"]
    response_id = final["id"]
    again = http.get(f"/v1/responses/{response_id}", params={"stream": "true", "starting_after": 2})
    assert _raw(again.content) == _raw(whole.content)[3:], "resumed byte for byte, from within the priming"
    fetched = sdk.responses.retrieve(response_id)
    assert [o.type for o in fetched.output] == ["compaction", "message"]
    chained = sdk.responses.create(model=FAKE_MODEL, previous_response_id=response_id, input="@reply=request")
    sent = _sent(chained.output_text)["messages"]
    assert sent[0]["content"].startswith(SUMMARY_PREFIX), "the kept conversation is the summary and the last turn"


def _raw(body: bytes) -> list[bytes]:
    """A stream's frames as sent (its first line, `retry:`, aside)."""
    return [frame + b"\n\n" for frame in body.removeprefix(b"retry: 2000\n").split(b"\n\n") if frame]


def test_a_compaction_trigger_compacts_now(sdk, http: httpx.Client) -> None:
    turns = [{"role": "user", "content": "Plan it @reply=request"}, {"type": "compaction_trigger"}]
    answered = sdk.responses.create(model=FAKE_MODEL, input=turns)
    assert [o.type for o in answered.output] == ["compaction", "message"]
    misplaced = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": list(reversed(turns))})
    assert [o["type"] for o in misplaced.json()["output"]] == ["compaction", "message"], "anywhere: compacts now"
    below = sdk.responses.create(
        model=FAKE_MODEL,
        input="short @reply=request",
        extra_body={"context_management": [{"type": "compaction", "compact_threshold": 100_000}]},
    )
    assert [o.type for o in below.output] == ["message"], "under the threshold, nothing is compacted"
    assert COMPACT_PROMPT not in below.output_text


def test_a_configuration_update_item_sets_the_effort_and_format_from_there_on(sdk) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    update = {
        "type": "configuration_update",
        "reasoning": {"effort": "high"},
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema}},
    }
    answered = sdk.responses.create(
        model=FAKE_MODEL, input=[update, {"role": "user", "content": "@reply=request"}], reasoning={"effort": "low"}
    )
    sent = _sent(answered.output_text)
    assert sent["reasoning_effort"] == "high" and sent["response_format"]["json_schema"]["name"] == "answer"
    assert answered.reasoning.effort == "low", "the response echoes the request's own"


def test_an_empty_warmup_over_http_prepares_a_chain(sdk, fake) -> None:
    before = fake.stats()["requests"]
    warm = sdk.responses.create(model=FAKE_MODEL, input=[], instructions="Be brief.", extra_body={"generate": False})
    assert warm.status == "completed" and warm.output == [] and fake.stats()["requests"] == before
    turn = sdk.responses.create(model=FAKE_MODEL, previous_response_id=warm.id, input="@reply=request")
    assert [m["role"] for m in _sent(turn.output_text)["messages"]] == ["user"]
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model=FAKE_MODEL, input=[])  # nothing to answer
