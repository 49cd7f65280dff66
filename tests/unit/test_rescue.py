"""Mid-answer rescue: what a continuation asks, what of it the client gets, and when there is none."""

from __future__ import annotations

import dataclasses

import pytest

from app.accounts.account import Account, Origin
from app.config import load_settings
from app.generation import continuation
from app.generation.relay import Relay
from app.metrics.catalogue import NoMetrics
from app.providers.base import ENDED_EARLY, UpstreamError
from app.providers.call import ChatCall
from app.providers.deltas import LOGPROBS, REASONING, TOOL_CALL, Delta

from .test_relay import Recorder, ScriptedAttempt, ScriptedProvider

CALL = ChatCall(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=20, options={"seed": 1})
CUT = UpstreamError("upstream_interrupted", "cut")
PREEMPTED = UpstreamError("upstream_interrupted", "ended early", log_fields={"upstream_ended": ENDED_EARLY})


@pytest.mark.parametrize(
    "text,seen,expected",
    [
        ("one two three ", "two three four", len("two three ")),
        ("one two three ", "one two three four", len("one two three ")),  # restarted from the start
        ("one two three ", "four five", 0),
        ("one two three ", "e four", 0),  # under MIN_OVERLAP: new text
        ("abc", "abc", 3),
    ],
)
def test_overlap_is_the_longest_repeat_of_the_end(text, seen, expected) -> None:
    assert continuation.overlap(text, seen) == expected


def test_a_message_continuation_loses_what_it_repeats_across_pieces() -> None:
    pieces = ["two ", "thr", "ee ", "four ", "five"]
    assert "".join(continuation.without_overlap("one two three ", pieces)) == "four five"
    logprobs = [Delta(LOGPROBS, "ee fo", data=[1]), "ur"]
    kept = list(continuation.without_overlap("one two three ", ["thr", *logprobs]))
    assert kept == [Delta(LOGPROBS, "fo", data=[1]), "ur"]


def test_pieces_flow_once_they_differ_from_the_delivered_text() -> None:
    def pieces():
        yield "four "
        raise AssertionError("read past the first piece that decides")

    flowing = continuation.without_overlap("one two three ", pieces())
    assert next(flowing) == "four "


def test_a_tool_call_ends_the_holding_and_passes() -> None:
    call = Delta(TOOL_CALL, "", 0, "call_1", "f")
    assert list(continuation.without_overlap("a b c ", ["b c ", call, "x"])) == [call, "x"]


def test_a_continuation_drops_reasoning() -> None:
    pieces = [Delta(REASONING, "hmm"), "four"]
    assert list(continuation.continued(pieces, "one ", "prefill")) == ["four"]


class Continuing(ScriptedProvider):
    """A scripted provider that continues by `strategy` and records the calls it was sent."""

    def __init__(self, strategy: str, *script: object) -> None:
        super().__init__(*script)
        self.strategy = strategy
        self.calls: list[ChatCall] = []

    def continuation(self, model, route) -> str:
        return self.strategy

    def open(self, call, slot=None, route=None):
        self.calls.append(call)
        return super().open(call, slot, route)


def _run(provider, call: ChatCall = CALL, listener: Recorder | None = None, **settings: str):
    config = load_settings({"TIMEOUT_SECONDS": "2", **settings}, environ={"OPENAI_API_KEY": "sk-x"})
    listener = listener or Recorder()
    outcome = Relay(provider, config, Account(call, 10, Origin("cid", "sid")), listener, metrics=NoMetrics()).run()
    return outcome, listener


def test_a_prefill_continues_from_the_delivered_text() -> None:
    provider = Continuing("prefill", ScriptedAttempt(["one ", "two ", CUT]), ScriptedAttempt(["three"]))
    outcome, listener = _run(provider)
    assert outcome.error is None and outcome.text == "one two three" and listener.chunks == ["one ", "two ", "three"]
    continued = provider.calls[1]
    assert continued.messages[-1] == {"role": "assistant", "content": "one two "}
    assert continued.options == {"seed": 1, **continuation.PREFILL_OPTIONS} and continued.max_tokens == 18
    assert outcome.usage.estimated, "a rescued reply's usage is ChatWait's count"


def test_a_message_continuation_asks_to_go_on_and_drops_the_repeat() -> None:
    provider = Continuing("message", ScriptedAttempt(["one ", "two ", CUT]), ScriptedAttempt(["two ", "three"]))
    outcome, _ = _run(provider)
    assert outcome.text == "one two three"
    assert provider.calls[1].messages[-2:] == [
        {"role": "assistant", "content": "one two "},
        {"role": "user", "content": continuation.CONTINUE_PROMPT},
    ]
    assert "continue_final_message" not in provider.calls[1].options


def test_a_message_continuation_has_room_to_restart_and_ends_where_max_tokens_does() -> None:
    """A model asked to go on often says the reply again from its start: its max_tokens leaves
    room for that (what it repeats is dropped), and the client still gets at most max_tokens in
    all: past them the continuation is stopped and the reply ends as `length`."""
    words = [f"w{i} " for i in range(30)]
    restarted = ScriptedAttempt(["one ", "two ", *words])
    provider = Continuing("message", ScriptedAttempt(["one ", "two ", CUT]), restarted)
    outcome, listener = _run(provider)
    assert provider.calls[1].max_tokens == 18 + 2, "the tokens left, and those of the text it may repeat"
    assert outcome.error is None and outcome.finish_reason == "length"
    assert outcome.text == "one two " + "".join(words[:18]) and len(listener.chunks) == 20
    assert restarted.stopped, "the upstream is told to stop"

    provider = Continuing("message", ScriptedAttempt(["one ", "two ", CUT]), ScriptedAttempt(["one ", "two ", "end"]))
    outcome, _ = _run(provider)
    assert outcome.text == "one two end" and outcome.finish_reason == "stop", "under the limit: its own ending"


def test_a_prefill_continuation_gets_only_the_tokens_left() -> None:
    provider = Continuing("prefill", ScriptedAttempt(["one ", "two ", CUT]), ScriptedAttempt(["x "] * 30))
    outcome, _ = _run(provider)
    assert provider.calls[1].max_tokens == 18, "a prefill repeats nothing: the server enforces the limit"
    assert outcome.text.count("x") == 18 and outcome.finish_reason == "length", "cut at the reservation, counted here"


def test_no_rescue_for_a_tool_call_none_or_when_turned_off() -> None:
    call = Delta(TOOL_CALL, "{", 0, "call_1", "f")
    provider = Continuing("prefill", ScriptedAttempt(["a ", call, CUT]))
    outcome, _ = _run(provider, dataclasses.replace(CALL, typed=True))
    assert outcome.error is not None and len(provider.calls) == 1
    provider = Continuing("none", ScriptedAttempt(["a ", CUT]))
    assert _run(provider)[0].error.error_code == "upstream_interrupted" and len(provider.calls) == 1
    provider = Continuing("prefill", ScriptedAttempt(["a ", CUT]))
    assert _run(provider, UPSTREAM_RESCUES="0")[0].error is not None and len(provider.calls) == 1


def test_rescues_and_preemptions_come_out_of_one_budget(sleeps) -> None:
    cuts = [ScriptedAttempt(["a ", CUT])] + [ScriptedAttempt([CUT]) for _ in range(5)]
    provider = Continuing("prefill", *cuts)
    outcome, _ = _run(provider, UPSTREAM_RESCUES="2")
    assert outcome.error is not None and len(provider.calls) == 3, "the first attempt and 2 continuations"

    preempted = [ScriptedAttempt([f"w{i} ", PREEMPTED]) for i in range(3)] + [ScriptedAttempt(["end"])]
    provider = Continuing("prefill", *preempted)
    outcome, _ = _run(provider, UPSTREAM_RESCUES="3")
    assert outcome.error is None and outcome.text == "w0 w1 w2 end", "a busy server is waited for"
    assert len(sleeps) == 3 and all(0 < delay <= 2 for delay in sleeps), "with backoff, so they do not herd"

    endless = [ScriptedAttempt(["a ", PREEMPTED])] + [ScriptedAttempt([PREEMPTED]) for _ in range(30)]
    provider = Continuing("prefill", *endless)
    outcome, _ = _run(provider, UPSTREAM_RESCUES="2")
    assert outcome.error is not None and len(provider.calls) == 1 + 2, "a preemption spends UPSTREAM_RESCUES too"

    mixed = [ScriptedAttempt(["a ", PREEMPTED]), ScriptedAttempt([CUT]), ScriptedAttempt(["b"])]
    provider = Continuing("prefill", *mixed)
    assert _run(provider, UPSTREAM_RESCUES="1")[0].error is not None and len(provider.calls) == 2


def test_the_streams_shared_budget_has_the_last_word_and_continuations_are_charged() -> None:
    """Another worker may have spent some of the stream's continuations (it took the stream over):
    the listener's count decides; what a continuation sends again is charged to the key."""
    provider = Continuing("prefill", ScriptedAttempt(["a ", CUT]), ScriptedAttempt(["b"]))
    outcome, listener = _run(provider, listener=Recorder(budget=0), UPSTREAM_RESCUES="2")
    assert outcome.error is not None and len(provider.calls) == 1 and listener.asked == 1
    provider = Continuing("prefill", ScriptedAttempt(["one ", CUT]), ScriptedAttempt(["two"]))
    outcome, _ = _run(provider, UPSTREAM_RESCUES="2")
    resent = provider.prompt_tokens(provider.calls[1].messages)
    assert outcome.error is None and outcome.usage.resent == resent > 0
    assert outcome.usage.charged == outcome.usage.generated + resent, "generated over the attempts, and resent"


def test_a_refused_prefill_is_asked_again_by_message() -> None:
    refused = UpstreamError("upstream_rejected", "no prefill", upstream_status=400)
    provider = Continuing("prefill", ScriptedAttempt(["a ", CUT]), refused, ScriptedAttempt(["b"]))
    outcome, _ = _run(provider)
    assert outcome.text == "a b" and provider.calls[2].messages[-1]["content"] == continuation.CONTINUE_PROMPT


def test_a_reply_cut_after_it_used_max_tokens_ends_as_length() -> None:
    """Nothing left to continue: the client asked for at most max_tokens and has them (a server
    killed between its last token and its finish), so the reply ends `length`, not as an error."""
    words = [f"w{i} " for i in range(CALL.max_tokens)]
    provider = Continuing("prefill", ScriptedAttempt([*words, CUT]))
    outcome, _ = _run(provider)
    assert outcome.error is None and outcome.finish_reason == "length" and outcome.text == "".join(words)
    assert len(provider.calls) == 1, "no continuation asked for"
    provider = Continuing("prefill", ScriptedAttempt([*words[:-1], CUT]), ScriptedAttempt(["end"]))
    assert _run(provider)[0].text == "".join(words[:-1]) + "end", "one token left: continued"
