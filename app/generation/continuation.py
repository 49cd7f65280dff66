"""Mid-answer rescue: a reply the upstream cut, ended early, let go silent or garbled after its
first token is continued on a healthy route from the text the client already has, in the same
stream (contiguous, no seam, nothing twice).

Strategies (per server, `continuation` in UPSTREAMS_FILE): `prefill` sends the delivered text as
a trailing assistant message the server completes (vLLM with `continue_final_message`, llama.cpp's
llama-server by default); `message` sends that message and a request to go on, and drops what the
continuation repeats of the delivered text's end (it is given the tokens to repeat it, and stopped
where the client's max_tokens ends the reply). A reply with a tool call or a refusal, or with
reasoning and no text yet, is never continued: a call cut mid-arguments would be corrupted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

from ..providers.base import Attempt, UpstreamError
from ..providers.call import ChatCall
from ..providers.deltas import LOGPROBS, REASONING, Delta, ReplyParts
from .seam import hold, seamed

# What cut the reply (the metric's `cause` label): the error codes a continuation can mend.
_CAUSES = {
    "upstream_interrupted": "interrupted",
    "upstream_timeout": "timeout",
    "upstream_bad_response": "bad_response",
}
CONTINUATION_FAILED = "continuation_failed"  # a continuation that could not be opened, tried again
TAKEOVER = "takeover"  # a reply whose worker died, continued by another
STRATEGIES = ("prefill", "message")
# vLLM continues a trailing assistant message only when told so; other servers ignore the fields.
PREFILL_OPTIONS = {"continue_final_message": True, "add_generation_prompt": False}
CONTINUE_PROMPT = (
    "Your previous reply was cut off. Continue it exactly where it stopped, mid-word if need be: "
    "do not repeat anything and do not add any preamble."
)
OVERLAP_WINDOW = 4096  # at most this much of a `message` continuation is held to find what it repeats
MIN_OVERLAP = 3  # a shorter repeat (a space, a letter) is taken as new text


def cause(failure: UpstreamError) -> str | None:
    """The rescue cause of a failure after the first token, or None when no continuation mends it
    (a refusal, a reply longer than max_tokens allows, a rate limit)."""
    if failure.preempted:
        return "preempted"
    if failure.refused:
        return "refused"
    if failure.log_fields.get("limit"):
        return None
    return _CAUSES.get(failure.error_code)


def after_failed_continuation(failure: UpstreamError) -> str | None:
    """The cause of trying again after a continuation failed to open: a preemption, another
    failure that trying again may mend, or None."""
    if failure.preempted:
        return "preempted"
    return CONTINUATION_FAILED if failure.retryable else None


def continuable(text: str, parts: ReplyParts) -> bool:
    """Whether a reply cut here can be continued: it has text, and no tool call or refusal."""
    return bool(text) and not parts.tool_calls and not parts.refusal


def continuation_call(call: ChatCall, text: str, strategy: str, tokens_left: int, repeat_tokens: int = 0) -> ChatCall:
    """The request that continues `call`'s reply from its delivered `text` by `strategy`; a
    `message` continuation may generate `repeat_tokens` more, to say again what it repeats."""
    messages = [*call.messages, {"role": "assistant", "content": text}]
    options = dict(call.options)
    max_tokens = max(1, tokens_left)
    if strategy == "prefill":
        options.update(PREFILL_OPTIONS)
    else:
        messages.append({"role": "user", "content": CONTINUE_PROMPT})
        max_tokens += repeat_tokens
    return dataclasses.replace(call, messages=messages, max_tokens=max_tokens, options=options, native=None)


def repeatable(text: str) -> str:
    """The end of the delivered `text` that a `message` continuation is given the tokens to say
    again: as much as `without_overlap` can find and drop (a model asked to go on often restarts)."""
    return text[-OVERLAP_WINDOW:]


def capped(
    pieces: Iterable[str | Delta], attempt: Attempt, tokens_left: int, count: Callable[[str], int]
) -> Iterator[str | Delta]:
    """A `message` continuation's `pieces` (what it repeated dropped) up to `tokens_left` tokens of
    text, as `count` counts them: where the client's max_tokens ends the reply, the attempt is
    stopped and ends as `length` (its own max_tokens left room for the repeat)."""
    for piece in pieces:
        if type(piece) is str or piece.kind == LOGPROBS:
            tokens_left -= count(piece if type(piece) is str else piece.text)
            if tokens_left < 0:
                attempt.finish("length")
                attempt.stop()
                return
        yield piece


def continued(pieces: Iterable[str | Delta], text: str, strategy: str) -> Iterator[str | Delta]:
    """A continuation's pieces as the client gets them: without reasoning (the reply's text has
    begun), and, for `message`, without what repeats the end of the delivered `text`, judged at
    the seam (`seam`)."""
    pieces = (piece for piece in pieces if type(piece) is str or piece.kind != REASONING)
    return pieces if strategy == "prefill" else seamed(text, without_overlap(text, pieces))


def without_overlap(text: str, pieces: Iterable[str | Delta]) -> Iterator[str | Delta]:
    """`pieces` less their beginning where it repeats the end of `text` (a model asked to go on
    often starts a few words back, or from the start): pieces are held while what they say so far
    is found in `text` (up to OVERLAP_WINDOW characters), then everything flows."""
    pieces = iter(pieces)
    held, seen, other = hold(pieces, lambda seen: len(seen) >= OVERLAP_WINDOW or seen not in text)
    yield from _cut(held, overlap(text, seen))
    if other is not None:
        yield other
    yield from pieces


def overlap(text: str, seen: str) -> int:
    """The length of the longest beginning of `seen` that `text` ends with (0 under MIN_OVERLAP)."""
    for length in range(min(len(text), len(seen)), MIN_OVERLAP - 1, -1):
        if text.endswith(seen[:length]):
            return length
    return 0


def _cut(held: list[str | Delta], skip: int) -> Iterator[str | Delta]:
    """The held pieces less their first `skip` characters."""
    for piece in held:
        piece_text = piece if type(piece) is str else piece.text
        if skip >= len(piece_text):
            skip -= len(piece_text)
            continue
        if skip:
            rest = piece_text[skip:]
            piece = rest if type(piece) is str else piece._replace(text=rest)
            skip = 0
        yield piece
