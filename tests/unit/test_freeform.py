"""A custom tool call's input decoded from the arguments a chat completions server streams for it,
cut anywhere (inside an escape, a surrogate pair, the opening): the pieces make the input, and
the whole call's input is the same."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.apis.responses.freeform import InputDecoder, arguments_of, whole_input


def _decoded(pieces: list[str]) -> str:
    decoder = InputDecoder()
    return "".join(decoder.feed(piece) for piece in pieces)


def _cut(text: str, cuts: list[int]) -> list[str]:
    places = sorted({cut % (len(text) + 1) for cut in cuts})
    return [text[start:end] for start, end in zip([0, *places], [*places, len(text)], strict=True)]


@settings(max_examples=400, deadline=None)
@given(st.text(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=12), st.booleans(), st.booleans())
def test_the_pieces_decode_to_the_input_wherever_the_arguments_are_cut(text, cuts, ascii_only, spaced) -> None:
    arguments = json.dumps({"input": text}, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))
    assert _decoded(_cut(arguments, cuts)) == text
    assert whole_input(arguments) == text
    assert whole_input(arguments_of(text)) == text


@given(st.text(max_size=40), st.lists(st.integers(min_value=0, max_value=100), max_size=5))
def test_arguments_that_are_not_the_input_object_decode_to_nothing_and_are_the_input_whole(text, cuts) -> None:
    arguments = json.dumps({"text": text})
    assert _decoded(_cut(arguments, cuts)) == ""
    assert whole_input(arguments) == arguments
    assert whole_input("not JSON at all") == "not JSON at all"


def test_an_input_that_goes_on_after_its_string_adds_nothing_more() -> None:
    assert _decoded(['{"input": "ab', 'c", "more": "x"}']) == "abc"
    assert _decoded(['{"input": "a\\', "q", 'b"}']) == "a", "a bad escape ends the decoding"
