"""Typed deltas: the tool-call mender against every stray shape (and random ones: whatever the
upstream sends, each call the client gets is one call, named once, with its arguments in order),
and the stored form of a delta (what a resume on another worker re-writes the event from)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.providers.deltas import (
    LOGPROBS,
    REASONING,
    REFUSAL,
    TEXT_KIND,
    TOOL_CALL,
    Delta,
    ReplyParts,
    decode,
    fold_stored,
)
from app.providers.tool_calls import MAX_PENDING_CHARS, MAX_TOOL_CALLS, MalformedToolCall, ToolCalls


def fold(chunks: list[list[dict]]) -> ReplyParts:
    calls, parts = ToolCalls(), ReplyParts()
    for entries in chunks:
        for delta in calls.feed(entries):
            parts.add(delta)
    assert not calls.unnamed()
    return parts


def whole(parts: ReplyParts) -> list[tuple[str, str]]:
    return [(call.name, call.arguments) for call in parts.tool_calls]


def entry(index=None, call_id=None, name=None, arguments=None) -> dict:
    function = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    found = {"index": index, "id": call_id, "type": "function", "function": function}
    return {k: v for k, v in found.items() if v is not None}


OPENAI_SHAPE = [
    [entry(0, "a", "f", "")], [entry(0, arguments='{"x"')], [entry(0, arguments=":1}")],
    [entry(1, "b", "g", "")], [entry(1, arguments="{}")],
]  # fmt: skip
STRAYS = {
    "no index": [[entry(None, "a", "f", '{"x"')], [entry(None, arguments=":1}")], [entry(None, "b", "g", "{}")]],
    "index reused": [[entry(0, "a", "f", '{"x"')], [entry(0, arguments=":1}")], [entry(0, "b", "g", "{}")]],
    "empty name repeated": [[entry(0, "a", "f", "")], [entry(0, "a", "", '{"x":1}')], [entry(1, "b", "g", "{}")]],
    "arguments at the end": [[entry(0, "a", "f")], [entry(1, "b", "g")], [entry(0, arguments='{"x":1}')],
                             [entry(1, arguments="{}")]],
    "arguments as an object": [[entry(0, "a", "f")], [entry(0, arguments={"x": 1})], [entry(1, "b", "g", {})]],
    "no id": [[entry(0, None, "f", '{"x":1}')], [entry(1, None, "g", "{}")]],
    "name after arguments": [[entry(0, "a", None, '{"x"')], [entry(0, name="f", arguments=":1}")],
                             [entry(1, "b", "g", "{}")]],
}  # fmt: skip


@pytest.mark.parametrize("shape", ["openai", *STRAYS])
def test_every_shape_gives_the_same_two_calls(shape: str) -> None:
    parts = fold(OPENAI_SHAPE if shape == "openai" else STRAYS[shape])
    assert whole(parts) == [("f", '{"x":1}'), ("g", "{}")]
    ids = [call.call_id for call in parts.tool_calls]
    assert all(ids) and len(set(ids)) == 2


def test_the_deltas_open_each_call_once_with_its_id_and_name_then_its_arguments() -> None:
    calls = ToolCalls()
    deltas = [d for entries in STRAYS["empty name repeated"] for d in calls.feed(entries)]
    assert deltas == [
        Delta(TOOL_CALL, "", 0, "a", "f"), Delta(TOOL_CALL, '{"x":1}', 0), Delta(TOOL_CALL, "", 1, "b", "g"),
        Delta(TOOL_CALL, "{}", 1),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "entries",
    [
        "not a list", [1], [{"index": -1, "function": {"name": "f"}}], [{"index": "0", "function": {}}],
        [{"id": 5, "function": {"name": "f"}}], [{"function": "f"}], [{"function": {"name": "f", "arguments": 5}}],
        [{"function": {"name": "f" * 300}}],
    ],
)  # fmt: skip
def test_what_no_mending_makes_sense_of_is_refused(entries) -> None:
    with pytest.raises(MalformedToolCall):
        ToolCalls().feed(entries)


def test_a_lone_surrogate_becomes_what_text_chunks_make_of_it() -> None:
    calls = ToolCalls()
    (start, args) = calls.feed([entry(0, "a\ud800", "f", '{"x": "\udc00"}')])
    assert (start.call_id, args.text) == ("a?", '{"x": "?"}')
    assert decode(*args.encode()) == args
    assert calls.feed([entry(0, "a\ud800", arguments="1")]) == [Delta(TOOL_CALL, "1", 0)], "the same call"


def test_a_call_that_never_gets_its_name_is_unusable_and_calls_are_bounded() -> None:
    calls = ToolCalls()
    calls.feed([{"index": 0, "function": {"arguments": "{}"}}])
    assert calls.unnamed()
    many = ToolCalls()
    many.feed([entry(i, f"id{i}", "f") for i in range(MAX_TOOL_CALLS)])
    with pytest.raises(MalformedToolCall):
        many.feed([entry(MAX_TOOL_CALLS, "one-more", "f")])


pieces = st.text(st.characters(codec="utf-8"), max_size=12)
names = st.text(max_size=64)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["f", "g_1", "h-2"]), st.lists(pieces, max_size=6)), min_size=1, max_size=5),
    st.sampled_from(["openai", "noindex", "reuse", "noid"]),
)
def test_any_calls_in_any_stray_shape_arrive_whole(calls: list, shape: str) -> None:
    chunks = []
    for number, (name, args) in enumerate(calls):
        index = None if shape == "noindex" else (0 if shape == "reuse" else number)
        call_id = None if shape == "noid" else f"call{number}"
        chunks.append([entry(index, call_id, name, "")])
        chunks += [[entry(index, arguments=arg)] for arg in args]
    assert whole(fold(chunks)) == [(name, "".join(args)) for name, args in calls]


@given(
    st.one_of(
        st.builds(lambda kind, text: Delta(kind, text), st.sampled_from([REASONING, REFUSAL]), st.text()),
        st.builds(
            lambda i, call_id, name: Delta(TOOL_CALL, "", i, call_id, name),
            st.integers(0, 127),
            st.text(min_size=1),
            names,
        ),
        st.builds(lambda text, i: Delta(TOOL_CALL, text, i), st.text(), st.integers(0, 127)),  # a piece of arguments
        st.builds(
            lambda text, logprob: Delta(LOGPROBS, text, data=[{"token": text, "logprob": logprob}]),
            st.text(),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
    )
)
def test_a_delta_is_stored_and_read_back_unchanged(delta: Delta) -> None:
    kind, payload = delta.encode()
    assert decode(kind, payload) == delta


def test_the_usual_piece_takes_the_short_path_to_the_same_deltas() -> None:
    calls = ToolCalls()
    calls.feed([entry(0, "a", "f", "")])
    assert calls.feed([entry(0, arguments='{"x"')]) == [Delta(TOOL_CALL, '{"x"', 0)]
    assert calls.feed([entry(0, arguments="")]) == [], "an empty piece makes nothing, as on the long path"
    calls.feed([entry(1, "b", "g", "")])
    assert calls.feed([entry(0, arguments=":1}")]) == [Delta(TOOL_CALL, ":1}", 0)], "an earlier call's piece"


def test_arguments_held_for_a_call_without_a_name_are_bounded() -> None:
    calls = ToolCalls()
    calls.feed([{"index": 0, "function": {"arguments": "x" * MAX_PENDING_CHARS}}])
    with pytest.raises(MalformedToolCall):
        calls.feed([{"index": 0, "function": {"arguments": "x"}}])


def test_stored_chunks_fold_into_the_text_and_the_parts() -> None:
    entries = [{"token": "He", "logprob": -0.5}]
    chunks = [Delta(REASONING, "hm"), Delta(LOGPROBS, "He", data=entries), Delta(TOOL_CALL, "", 0, "c", "f")]
    stored = [chunks[0].encode(), chunks[1].encode(), (TEXT_KIND, b"llo"), chunks[2].encode()]
    stored.append(Delta(TOOL_CALL, "{}", 0).encode())
    text, parts = fold_stored(stored)
    assert text == "Hello" and parts.reasoning == "hm" and parts.logprobs == entries
    assert [(call.name, call.arguments) for call in parts.tool_calls] == [("f", "{}")]
