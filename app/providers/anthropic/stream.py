"""A streamed Messages API reply read from the upstream's response: Anthropic's events to text
pieces and typed deltas (thinking and its signature, tool calls), its stop reason and usage.

Each `data:` line is one event, its `type` says which. Text and thinking deltas are text and
reasoning; a `tool_use` block's start opens a tool call (numbered 0, 1, ... among the reply's
calls) and its `input_json_delta` pieces are the call's arguments, passed on as they come (never
parsed, so a call cut anywhere is whole once resumed). Blocks ChatWait does not carry (redacted
thinking, a server tool's use and results, citations) are skipped; a text or thinking piece of
a block whose start never came opens it. A reply is complete at
`message_stop` after a `message_delta` with its stop reason; one that ends otherwise is an
error. Malformed events are skipped up to MAX_SKIPPED_CHUNKS a reply, as for chat completions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from ..base import UpstreamError, reply_id
from ..call import Usage
from ..deltas import REASONING, TOOL_CALL, Delta
from ..httpapi.stream import MAX_FINISH_REASON_CHARS, HttpAttempt, count
from ..tool_calls import MAX_NAME_CHARS, MAX_TOOL_CALLS

# Anthropic's stop reasons as OpenAI's finish reasons (others, like pause_turn, are a stop).
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The error types of Anthropic's `error` event, as logged (any other: `other`).
ERROR_TYPES = frozenset(
    (
        "overloaded_error",
        "api_error",
        "rate_limit_error",
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "timeout_error",
    )
)
MAX_ID_CHARS = 256
MAX_BLOCKS = 4096  # content blocks in one reply (each is remembered until the reply ends)
MAX_STOP_SEQUENCE_CHARS = 1024  # a stop sequence the server says ended the reply (the client's, bounded)
_SKIPPED = object()  # a content block ChatWait does not carry
_OPENS = {"text_delta": "text", "thinking_delta": "thinking"}  # the block a piece of one never started is


class AnthropicAttempt(HttpAttempt):
    """A Messages API stream read from the upstream HTTP response (`httpapi.stream`'s frame)."""

    chunks = "Messages API events"
    ending = "a stop reason"

    def __init__(self, response: Any, idle_timeout: float, max_line: int) -> None:
        headers = response.headers
        super().__init__(response, idle_timeout, max_line, headers.get("request-id") or headers.get("x-request-id"))
        self._blocks: dict[int, Any] = {}  # a block's index -> its kind (text, thinking, a call's number) or _SKIPPED
        self._calls = 0
        self._usage: dict[str, int] = {}
        self._stop_reason: str | None = None

    def _read(self, payloads: list[bytes], found: list[str | Delta]) -> None:
        for data in payloads:
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                try:
                    event = json.loads(data)  # an escaped lone surrogate, which orjson refuses
                except (ValueError, RecursionError):
                    event = None
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "message_stop":
                self._finish()
                self._ended = True
                return
            try:
                for piece in self._event(kind, event):
                    found.append(piece)
            except (_Malformed, AttributeError, TypeError, KeyError):
                self._skip()

    def _event(self, kind: Any, event: Any) -> Iterator[str | Delta]:
        if kind == "content_block_delta":
            yield from self._delta(event["index"], event["delta"])
        elif kind == "content_block_start":
            yield from self._start(event["index"], event["content_block"])
        elif kind == "message_start":
            self._count(event["message"].get("usage"))
            self.response_id = reply_id(event["message"].get("id"))
        elif kind == "message_delta":
            self._count(event.get("usage"))
            reason, sequence = event["delta"].get("stop_reason"), event["delta"].get("stop_sequence")
            if reason is not None:
                if type(reason) is not str or len(reason) > MAX_FINISH_REASON_CHARS:
                    raise _Malformed
                self._stop_reason = reason
            if type(sequence) is str and len(sequence) <= MAX_STOP_SEQUENCE_CHARS:
                self.stop_sequence = sequence
        elif kind == "error":
            raise self._failure(event.get("error"))
        elif kind not in ("ping", "content_block_stop"):
            raise _Malformed

    def _start(self, index: Any, block: dict[str, Any]) -> Iterator[str | Delta]:
        """A content block's start: what it opens, and the text it already holds."""
        kind = block["type"]
        if type(index) is not int or index in self._blocks:
            raise _Malformed
        self._room()
        if kind == "tool_use":
            yield self._call(index, block)
            return
        self._blocks[index] = kind if kind in ("text", "thinking") else _SKIPPED
        if kind in ("text", "thinking"):
            yield from self._delta(index, {"type": f"{kind}_delta", kind: block.get(kind) or ""})

    def _room(self) -> None:
        """Room for one more content block (a reply of endless empty blocks is no reply)."""
        if len(self._blocks) >= MAX_BLOCKS:
            raise self._error("upstream_bad_response", f"The reply opened more than {MAX_BLOCKS} content blocks.")

    def _call(self, index: int, block: dict[str, Any]) -> Delta:
        call_id, name, given = block["id"], block["name"], block.get("input") or {}
        if not (_short(call_id, MAX_ID_CHARS) and _short(name, MAX_NAME_CHARS) and name and isinstance(given, dict)):
            raise self._error("upstream_bad_response", "A streamed tool_use block is not one.")
        if self._calls >= MAX_TOOL_CALLS:
            raise self._error("upstream_bad_response", f"The reply opened more than {MAX_TOOL_CALLS} tool calls.")
        self._blocks[index] = self._calls
        self._calls += 1
        return Delta(TOOL_CALL, orjson.dumps(given).decode() if given else "", self._blocks[index], call_id, name)

    def _delta(self, index: Any, delta: dict[str, Any]) -> Iterator[str | Delta]:
        """One piece of the block at `index`, as text or a typed delta (nothing if empty). A text or
        thinking piece of a block never started opens it (a server that skips the start loses nothing)."""
        kind = delta["type"]
        if type(index) is int and index not in self._blocks and kind in _OPENS:
            self._room()
            self._blocks[index] = _OPENS[kind]
        block = self._blocks.get(index, _SKIPPED) if type(index) is int else _SKIPPED
        if block is _SKIPPED or kind == "citations_delta":
            return
        field = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}
        piece = delta.get(field.get(kind, "partial_json"))
        if type(piece) is not str:
            raise _Malformed
        if type(block) is int and kind == "input_json_delta":
            if piece:
                yield Delta(TOOL_CALL, piece, block)
        elif block == "text" and kind == "text_delta":
            if piece:
                yield piece
        elif block == "thinking" and kind == "thinking_delta":
            if piece:
                yield Delta(REASONING, piece)
        elif block == "thinking" and kind == "signature_delta":
            yield Delta(REASONING, data=piece)
        else:
            raise _Malformed

    def _count(self, usage: Any) -> None:
        """Keep the usage counts an event gives (message_delta's are the latest)."""
        if isinstance(usage, dict):
            for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                if count(usage.get(name)):
                    self._usage[name] = usage[name]
            lifetimes = usage.get("cache_creation")
            if isinstance(lifetimes, dict) and count(lifetimes.get("ephemeral_1h_input_tokens")):
                self._usage["long"] = lifetimes["ephemeral_1h_input_tokens"]

    def _finish(self) -> None:
        if self._stop_reason is None:
            return  # no stop reason: an error once the body is read
        self.finish(FINISH_REASONS.get(self._stop_reason, self._stop_reason))
        found = self._usage
        if "input_tokens" in found and "output_tokens" in found:
            cached, written = found.get("cache_read_input_tokens", 0), found.get("cache_creation_input_tokens", 0)
            prompt, long = found["input_tokens"] + cached + written, min(found.get("long", 0), written)
            self.usage = Usage(
                prompt,
                found["output_tokens"],
                cached_tokens=cached,
                cache_write_tokens=written,
                cache_write_long_tokens=long,
            )

    def _failure(self, error: Any) -> UpstreamError:
        """An `error` event (Anthropic's servers send `overloaded_error` so): the reply is cut, and
        may be continued elsewhere. Its type is logged when it is one of Anthropic's."""
        kind = error.get("type") if isinstance(error, dict) else None
        said = kind if isinstance(kind, str) and kind in ERROR_TYPES else "other"
        detail = "The model provider reported an error mid-reply."
        return self._error("upstream_interrupted", detail, upstream_error=said)


class _Malformed(Exception):
    """An event that is not a Messages API event (skipped, within bounds)."""


def _short(value: Any, limit: int) -> bool:
    return type(value) is str and len(value) <= limit
