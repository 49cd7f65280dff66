"""A compaction item: the summary it seals, what the model is sent for it, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.apis.items import compaction
from app.apis.items.input import ResponseInput
from app.apis.items.listing import listed
from app.apis.responses.chat import to_messages
from app.apis.responses.replies import compacted_reply
from app.errors import ApiError
from app.generation.outcome import Outcome
from app.providers.call import Usage


@given(st.text())
def test_any_summary_is_sealed_and_read_back_whole(summary: str) -> None:
    assert compaction.unseal(compaction.seal(summary)) == summary


@pytest.mark.parametrize(
    "content", ["", "gAAAAABpZ-openai-ciphertext", "chatwait.compaction.v0:old", " chatwait.compaction.v1:x"]
)
def test_what_chatwait_did_not_seal_is_refused(content: str) -> None:
    with pytest.raises(ValidationError, match="Not a compaction ChatWait made"):
        compaction.unseal(content)


def test_a_compaction_item_is_the_summary_for_the_model_and_kept_as_sent() -> None:
    sealed = compaction.seal("The user plans a trip to Lyon.")
    items = ResponseInput().deserialize(
        [{"role": "user", "content": "trip?"}, {"type": "compaction", "id": "cmp_1", "encrypted_content": sealed}]
    )
    assert to_messages(items)[1] == {
        "role": "assistant",
        "content": compaction.SUMMARY_PREFIX + "The user plans a trip to Lyon.",
    }
    assert listed(items[1]) == {"id": "cmp_1", "type": "compaction", "encrypted_content": sealed}
    with pytest.raises(ValidationError) as refused:
        ResponseInput().deserialize([{"type": "compaction", "encrypted_content": "opaque"}])
    assert list(refused.value.messages[0]) == ["encrypted_content"]


def test_the_compaction_object_is_the_users_messages_then_the_summary() -> None:
    conversation = [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]
    usage = Usage(prompt_tokens=30, completion_tokens=5)
    reply = compacted_reply(conversation, Outcome(" Summary. ", 5, usage, 1.0, 1.0, "stop"))
    assert reply["object"] == "response.compaction" and reply["id"].startswith("resp_")
    *users, item = reply["output"]
    assert [u["content"][0]["text"] for u in users] == ["one", "three"] and {u["role"] for u in users} == {"user"}
    assert item["type"] == "compaction" and compaction.unseal(item["encrypted_content"]) == "Summary."
    assert reply["usage"]["input_tokens"] == 30 and reply["usage"]["output_tokens"] == 5
    with pytest.raises(ApiError) as empty:
        compacted_reply(conversation, Outcome("  ", 0, usage, 1.0, 1.0, "stop"))
    assert empty.value.error_code == "upstream_bad_response"
