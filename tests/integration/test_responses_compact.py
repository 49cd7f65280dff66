"""POST /v1/responses/compact through the `openai` SDK, on both stream stores: the model's summary
in a compaction item after the user's messages, which a later turn sends back as input (over
HTTP and over the WebSocket) for the model to read as the summary; its errors."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from app.apis.items.compaction import SEAL_MARK, SUMMARY_PREFIX
from app.apis.responses.compaction import COMPACT_PROMPT

from ..conftest import FAKE_MODEL
from ..sse import expected_reply

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores


def _sent(response) -> list[dict]:
    """The messages the model was sent, from a reply to `@reply=request` (the request, echoed)."""
    return json.loads(response.output_text)["messages"]


def test_a_chain_compacts_to_its_user_messages_and_the_models_summary(sdk) -> None:
    first = sdk.responses.create(model=FAKE_MODEL, input=f"{uuid.uuid4().hex} plan the trip @tokens=4")
    compacted = sdk.responses.compact(
        model=FAKE_MODEL, previous_response_id=first.id, input="and the budget?", instructions="Be exact."
    )
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    *users, item = compacted.output
    assert [u.role for u in users] == ["user", "user"] and users[1].content[0].text == "and the budget?"
    assert item.type == "compaction" and item.id.startswith("cmp_") and item.encrypted_content.startswith(SEAL_MARK)
    assert compacted.usage.output_tokens > 0 and compacted.usage.total_tokens > compacted.usage.input_tokens

    # The next turn sends the compacted output as its input: the model reads the summary it wrote (the
    # SDK types a user message of the output as an assistant's, hence warnings=False: the JSON is right).
    items = [entry.model_dump(exclude_none=True, warnings=False) for entry in compacted.output]
    echoed = sdk.responses.create(model=FAKE_MODEL, input=[*items, {"role": "user", "content": "go on @reply=request"}])
    sent = _sent(echoed)
    assert [m["role"] for m in sent] == ["user", "user", "assistant", "user"]
    summary, written = sent[2]["content"], expected_reply(compacted.usage.output_tokens).strip()
    assert summary.startswith(SUMMARY_PREFIX) and summary.removeprefix(SUMMARY_PREFIX) == written
    assert COMPACT_PROMPT not in json.dumps(sent), "the request for the summary is not part of the conversation"
    listed = sdk.responses.input_items.list(echoed.id, order="asc").data
    assert [entry.type for entry in listed] == ["message", "message", "compaction", "message"]
    assert listed[2].encrypted_content == item.encrypted_content, "kept as it was sent"


def test_the_model_is_asked_for_a_summary_of_the_whole_conversation(sdk, fake) -> None:
    marker = uuid.uuid4().hex
    compacted = sdk.responses.compact(
        model=FAKE_MODEL, input=[{"role": "user", "content": f"{marker} one"}, {"role": "assistant", "content": "two"}]
    )
    asked = [o for o in fake.stats()["outcomes"] if o.get("message") == COMPACT_PROMPT[:200]][-1]
    assert asked["messages"] == 3, "the conversation, then the request for its summary"
    assert [u.content[0].text for u in compacted.output[:-1]] == [f"{marker} one"], "the user's messages only"


def test_a_compacted_chain_goes_on_over_the_websocket(server, sdk) -> None:
    from websockets.sync.client import connect

    compacted = sdk.responses.compact(model=FAKE_MODEL, input=f"{uuid.uuid4().hex} remember 42")
    items = [entry.model_dump(exclude_none=True, warnings=False) for entry in compacted.output]
    asked = {"role": "user", "content": "@reply=request"}
    turn = {"type": "response.create", "model": FAKE_MODEL, "input": [*items, asked]}
    with connect(server.url.replace("http", "ws", 1) + "/v1/responses", open_timeout=10) as socket:
        socket.send(json.dumps(turn))
        while (event := json.loads(socket.recv(timeout=30)))["type"] != "response.completed":
            assert event["type"] != "error", event
    text = event["response"]["output"][0]["content"][0]["text"]
    assert json.loads(text)["messages"][1]["content"].startswith(SUMMARY_PREFIX)


def test_what_cannot_be_compacted_is_a_clear_400(server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        nothing = client.post("/v1/responses/compact", json={"model": FAKE_MODEL})
        assert nothing.status_code == 400 and nothing.json()["error"]["param"] == "input", nothing.text
        foreign = {"type": "compaction", "encrypted_content": "gAAAAABo-another-providers-ciphertext"}
        refused = client.post("/v1/responses", json={"input": [foreign]})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["param"] == "input[0].encrypted_content", error
        assert "Not a compaction ChatWait made" in error["message"], error
        missing = client.post(
            "/v1/responses/compact", json={"model": FAKE_MODEL, "previous_response_id": "resp_" + "0" * 32}
        )
        assert missing.status_code == 404, missing.text
        assert client.get("/v1/responses/compact").status_code == 405, "compact is no response id"
