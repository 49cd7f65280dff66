"""The typed pieces of a reply besides its text: reasoning (and the signature an Anthropic server
seals a thinking block with), a refusal, tool calls, and text that comes with its tokens' log
probabilities (when the client asked for them).

A generation yields `str` for text (the common case, kept as cheap as before) and a `Delta`
for anything else. A stream stores each delta as a one-letter kind and a payload (`encode`),
in memory and in Redis alike, so that any worker re-writes the same event from it (`decode`).
`ReplyParts` folds the deltas of one reply into what a whole reply object says.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

REASONING = "reasoning"
REFUSAL = "refusal"
TOOL_CALL = "tool_call"  # a call's start (with `call_id` and `name`) or a piece of its arguments
LOGPROBS = "logprobs"  # a piece of the text, with its tokens' log probabilities (`data`)

TEXT_KIND = b"c"  # a stored text chunk's kind (the Redis entry's field)
_KIND_OF = {REASONING: b"r", REFUSAL: b"f"}
_LOGPROBS = b"l"  # text and its log probabilities (JSON: [text, entries])
_SIGNATURE = b"s"  # a thinking block's signature (a REASONING delta without text, `data` the signature)
_CALL_START, _CALL_PIECE = b"x", b"a"  # a tool call's start (JSON), a piece of its arguments (`index:text`)
_NAME_OF = {letter: name for name, letter in _KIND_OF.items()}


class Delta(NamedTuple):
    """One typed piece: reasoning or refusal `text`, or a tool call's start (`call_id`, `name`,
    no text) or a piece of its arguments (`text`), at its `index` among the reply's calls, or a
    piece of the reply's text with its tokens' log probabilities (`data`: OpenAI's entries), or a
    thinking block's signature (REASONING, no text, `data` the signature) (a tuple: one is made per
    piece, and a tuple is the cheapest immutable value to make)."""

    kind: str
    text: str = ""
    index: int = 0
    call_id: str | None = None
    name: str | None = None
    data: Any = None

    @property
    def starts_call(self) -> bool:
        """Whether this delta opens a tool call (it carries the call's id and name)."""
        return self.call_id is not None

    @property
    def size(self) -> int:
        """Characters it adds to the reply (what MAX_CHARS bounds); a log-probability entry counts
        as one, so that pieces without text still end an endless reply."""
        if self.call_id is None and self.data is None:  # reasoning, a refusal, a piece of arguments
            return len(self.text)
        return len(self.text) + len(self.name or "") + len(self.call_id or "") + (len(self.data) if self.data else 0)

    def encode(self) -> tuple[bytes, bytes]:
        """Its stored form: the kind's letter and the payload (a piece of arguments, the most
        frequent, as its index and its text)."""
        if self.kind == LOGPROBS:
            return _LOGPROBS, orjson.dumps([self.text, self.data])
        if self.kind == REASONING and self.data is not None:
            return _SIGNATURE, self.data.encode("utf-8", "replace")
        if self.kind != TOOL_CALL:
            return _KIND_OF[self.kind], self.text.encode("utf-8", "replace")
        if self.call_id is None:
            return _CALL_PIECE, b"%d:%b" % (self.index, self.text.encode("utf-8", "replace"))
        return _CALL_START, orjson.dumps([self.index, self.call_id, self.name, self.text])


def decode(kind: bytes, payload: bytes) -> Delta:
    """The delta a stored (kind, payload) pair holds."""
    if kind == _CALL_PIECE:
        index, _, text = payload.partition(b":")
        return Delta(TOOL_CALL, text.decode("utf-8", "replace"), int(index))
    if kind == _CALL_START:
        index, call_id, call_name, text = orjson.loads(payload)
        return Delta(TOOL_CALL, text, index, call_id, call_name)
    if kind == _LOGPROBS:
        text, data = orjson.loads(payload)
        return Delta(LOGPROBS, text, data=data)
    if kind == _SIGNATURE:
        return Delta(REASONING, data=payload.decode("utf-8", "replace"))
    return Delta(_NAME_OF[kind], payload.decode("utf-8", "replace"))


class ToolCall:
    """One whole tool call of a reply (its arguments kept as pieces: joined when read, so that
    a call streamed in many pieces costs each piece its own size, not the whole so far)."""

    __slots__ = ("_arguments", "call_id", "name")

    def __init__(self, call_id: str, name: str, arguments: str = "") -> None:
        self.call_id = call_id
        self.name = name
        self._arguments = [arguments] if arguments else []

    @property
    def arguments(self) -> str:
        return _joined(self._arguments)

    def extend(self, piece: str) -> None:
        """One more piece of its arguments."""
        self._arguments.append(piece)

    def as_openai(self) -> dict[str, Any]:
        """The call as chat completions writes it in a message's `tool_calls`."""
        return {"id": self.call_id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class ReplyParts:
    """What a reply's deltas add up to: its reasoning, refusal and tool calls, in order. Text
    arrives in pieces and is joined when read (see ToolCall)."""

    __slots__ = ("_reasoning", "_refusal", "logprobs", "signature", "tool_calls")

    def __init__(self) -> None:
        self.signature = ""  # the last thinking block's, where an Anthropic server sealed it
        self.tool_calls: list[ToolCall] = []
        self.logprobs: list[Any] = []  # the text's tokens', where asked
        self._reasoning: list[str] = []
        self._refusal: list[str] = []

    @property
    def reasoning(self) -> str:
        return _joined(self._reasoning)

    @property
    def refusal(self) -> str:
        return _joined(self._refusal)

    def add(self, delta: Delta) -> None:
        """Fold one delta in (the text of a LOGPROBS delta is the reply's text, kept apart)."""
        kind = delta.kind
        if kind == REASONING:
            if delta.text:
                self._reasoning.append(delta.text)
            if delta.data is not None:
                self.signature = delta.data
        elif kind == LOGPROBS:
            self.logprobs += delta.data
        elif kind == REFUSAL:
            self._refusal.append(delta.text)
        elif delta.call_id is not None:
            self.tool_calls.append(ToolCall(delta.call_id, delta.name or "", delta.text))
        elif 0 <= delta.index < len(self.tool_calls):
            self.tool_calls[delta.index].extend(delta.text)

    def counted_text(self) -> str:
        """What the model generated besides the text, for counting its tokens."""
        calls = "".join(call.name + call.arguments for call in self.tool_calls)
        return self.reasoning + self.refusal + calls


def fold_stored(chunks: Iterable[tuple[bytes, bytes]]) -> tuple[str, ReplyParts]:
    """The text and the parts of a reply's stored chunks, (kind, payload) pairs in order."""
    texts: list[bytes] = []
    parts = ReplyParts()
    for kind, payload in chunks:
        if kind == TEXT_KIND:
            texts.append(payload)
            continue
        delta = decode(kind, payload)
        parts.add(delta)
        if delta.kind == LOGPROBS:
            texts.append(delta.text.encode("utf-8", "replace"))
    return b"".join(texts).decode("utf-8", "replace"), parts


def _joined(pieces: list[str]) -> str:
    """The pieces' text, kept joined as one piece from then on."""
    if len(pieces) > 1:
        pieces[:] = ["".join(pieces)]
    return pieces[0] if pieces else ""
