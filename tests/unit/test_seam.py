"""The seam of a continuation asked for by message: chat turns and restarts refused, glued words
spaced, everything else untouched (whatever the cuts between pieces)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.generation.continuation import continued
from app.generation.seam import JUDGE_CHARS, judge, seamed, spacing
from app.providers.base import UpstreamError
from app.providers.deltas import TOOL_CALL, Delta

REPLY = "The old river ran through the valley for a thousand years, and the town grew along"


def _joined(text: str, pieces: list) -> str:
    return "".join(p if isinstance(p, str) else p.text for p in seamed(text, pieces))


@pytest.mark.parametrize(
    "head",
    ["Sure! Here is the rest of it:", "Certainly, continuing from there", "You're welcome! Anything else?",
     "I apologize for the interruption.", "Here's the rest of the story.", "Okay, so the town",
     "Here's a continuation of the previous story:", "I'm sorry, but please continue", "I'm afraid that a part"],
)  # fmt: skip
def test_a_continuation_that_answers_as_a_chat_turn_is_refused(head: str) -> None:
    with pytest.raises(UpstreamError) as refused:
        _joined(REPLY, [head[:7], head[7:], " and then more words follow here to fill the window"])
    assert refused.value.error_code == "upstream_bad_response"
    assert refused.value.log_fields == {"seam": "answered as a chat turn"}


def test_a_continuation_that_restarts_the_reply_in_other_words_is_refused() -> None:
    again = "The old river flowed through the valley for thousands of years"
    with pytest.raises(UpstreamError) as refused:
        _joined(REPLY, [again])
    assert refused.value.log_fields == {"seam": "restarted the reply"}
    assert judge(REPLY, " its banks, fishing and trading for generations.") is None


@pytest.mark.parametrize(
    ("text", "head", "joined"),
    [
        ("the tide rolled in", "In the end it was", " In the end it was"),  # a new sentence glued to a word
        ("the end.", "Then came winter", " Then came winter"),
        ("first, second,", "third and last", " third and last"),
        ("it rol", "led on and on", "led on and on"),  # mid-word: as it is
        ("the tide rolled in", " and out again", " and out again"),
        ("ends with a space ", "Next", "Next"),
        ("a list:\n", "- one", "- one"),
    ],
)
def test_a_glued_seam_gets_the_space_it_needs_and_no_other(text: str, head: str, joined: str) -> None:
    assert _joined(text, [head]) == joined


def test_what_is_not_text_ends_the_holding_and_passes() -> None:
    call = Delta(TOOL_CALL, '{"a":', index=0, call_id="c1", name="f")
    out = list(seamed("done.", ["Then", call, "more"]))
    assert out == [" Then", call, "more"]


def test_prefill_continuations_are_left_as_they_are() -> None:
    assert list(continued(["Sure! x"], REPLY, "prefill")) == ["Sure! x"]
    with pytest.raises(UpstreamError):
        list(continued(["Sure! x"], REPLY, "message"))


@given(st.text(min_size=1, max_size=60), st.text(alphabet="abcdefghij xyz,.", min_size=1, max_size=120), st.data())
def test_any_cut_of_a_plain_continuation_comes_out_whole(text: str, continuation: str, data) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(continuation) - 1)), max_size=8)))
    pieces = [continuation[a:b] for a, b in zip([0, *cuts], [*cuts, len(continuation)], strict=True) if a < b]
    if judge(text, continuation) is not None:
        return
    expected = (" " if spacing(text, continuation) else "") + continuation
    assert _joined(text, pieces) == expected


def test_a_long_continuation_is_judged_on_its_first_words_only() -> None:
    tail = "x" * 1000
    assert _joined("ok.", ["Then " + "y" * JUDGE_CHARS, " Sure! ", tail]).endswith(" Sure! " + tail)
