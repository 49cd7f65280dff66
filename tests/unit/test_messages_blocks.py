"""Anthropic's content blocks as ChatWait checks and translates them: any JSON a client sends is
either taken or refused with a ValidationError naming the block (fuzzed), and what is taken
becomes the chat messages every upstream reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.apis.messages.blocks import Content, SystemPrompt, chat_messages

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
KINDS = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "x"])
BLOCK = st.builds(lambda kind, rest: {"type": kind, **rest}, KINDS, st.dictionaries(
    st.sampled_from(["text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking",
                     "signature", "data", "cache_control", "extra"]), JSON, max_size=4))  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(JSON, st.lists(BLOCK, max_size=4)))
def test_any_content_is_taken_or_refused_cleanly(value) -> None:
    try:
        found = Content()._deserialize(value, "content", {})
    except ValidationError:
        return
    for role in ("user", "assistant"):
        chat_messages(role, found)  # what is taken translates


@pytest.mark.parametrize(
    "block",
    [
        {"type": []},
        {"type": "text", "text": "\ud800"},
        {"type": "tool_use", "id": "\ud800", "name": "f", "input": {}},
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_result", "tool_use_id": "u"}]},
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="}},
        {"type": "image", "source": {"type": "url", "url": "data:image/png;base64,AA=="}},
        {"type": "text", "text": "x", "cache_control": []},
    ],
)
def test_a_bad_block_is_refused_by_its_index(block) -> None:
    with pytest.raises(ValidationError) as refused:
        Content()._deserialize([{"type": "text", "text": "ok"}, block], "content", {})
    assert 1 in refused.value.messages


def test_the_translation_of_a_tool_round_trip() -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"word": "hi"}}
    assert chat_messages("assistant", [{"type": "text", "text": "Let me look."}, call]) == [
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": '{"word": "hi"}'}}
            ],
        }
    ]
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a greeting"}]}
    failed = {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such word", "is_error": True}
    assert chat_messages("user", [result, failed, {"type": "text", "text": "Thanks"}]) == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a greeting"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no such word"},
        {"role": "user", "content": "Thanks"},
    ]
    assert (
        SystemPrompt()._deserialize([{"type": "text", "text": "A"}, {"type": "text", "text": "B"}], "s", {}) == "A\n\nB"
    )
