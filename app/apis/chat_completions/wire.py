"""Chat completions' wire: a stream's events as `chat.completion.chunk` objects, as the `openai`
SDK and its kind parse them.

A completion stream is a ChatWait stream: every SSE event has an `id:`, so it resumes like any
other. The priming event (id 0) is the chunk that opens every OpenAI stream (role `assistant`,
empty content); each text chunk has its own id; the terminal event (id n+1) is the chunk with the
finish reason, the usage chunk when the client asked for it (`stream_options.include_usage`),
then `data: [DONE]`, each block with the same id. A failure after the start is an
`{"error": {...}}` chunk, then `[DONE]`: the SDK raises it as an APIError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...providers.deltas import LOGPROBS, REFUSAL, TOOL_CALL
from ...streaming.wire.sse import dumps, one_id_per_event, quote
from ..openai import openai_error_body
from .replies import COMPLETION_PREFIX, openai_finish_reason

if TYPE_CHECKING:
    from ...errors import ApiError
    from ...generation.outcome import Outcome
    from ...providers.deltas import Delta

NAME = "openai"  # the wire's name, as streams in Redis record it


class OpenAIWriter:
    """One completion stream's frames; the bytes every chunk shares are built once per stream."""

    name = NAME
    echo = None  # no request parameters repeated in its events
    model_first = True
    position = staticmethod(one_id_per_event)

    def __init__(self, stream_id: str, correlation_id: str, model: str, created: float, include_usage: bool) -> None:
        self.correlation_id = correlation_id
        self.include_usage = include_usage
        self._head = b'{"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s' % (
            quote(COMPLETION_PREFIX + stream_id).encode(),
            int(created),
            quote(model).encode("utf-8", "replace"),
        )
        self._open_delta = b"\ndata: " + self._head + b',"choices":[{"index":0,"delta":{'
        self._delta = self._open_delta + b'"content":'

    @staticmethod
    def numbered(event_id: int) -> int:
        """The SSE id of stream event `event_id`: the same."""
        return event_id

    def priming(self) -> bytes:
        opening = b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
        return b"id: 0\ndata: %b,%b\n\n" % (self._head, opening)

    def chunk(self, sequence: int, content: str) -> bytes:
        return b'id: %d%b%b},"finish_reason":null}]}\n\n' % (
            sequence,
            self._delta,
            quote(content).encode("utf-8", "replace"),
        )

    def delta(self, sequence: int, delta: Delta) -> bytes:
        """A chunk of reasoning (`reasoning_content`, as DeepSeek, vLLM and llama.cpp send it), of
        a refusal, of a tool call (its first chunk with `id`, `type` and `name`), or text with its
        tokens' `logprobs`, in OpenAI's shape."""
        if delta.kind == LOGPROBS:
            content = quote(delta.text).encode("utf-8", "replace")
            logprobs = dumps(delta.data).encode("utf-8", "replace")
            return b'id: %d%b%b},"logprobs":{"content":%b,"refusal":null},"finish_reason":null}]}\n\n' % (
                sequence,
                self._delta,
                content,
                logprobs,
            )
        if delta.kind != TOOL_CALL:
            field = b"refusal" if delta.kind == REFUSAL else b"reasoning_content"
            added = b'"%b":%b' % (field, quote(delta.text).encode("utf-8", "replace"))
        elif delta.starts_call:
            function = {"name": delta.name or "", "arguments": delta.text}
            call = {"index": delta.index, "id": delta.call_id, "type": "function", "function": function}
            added = b'"tool_calls":[%b]' % dumps(call).encode("utf-8", "replace")
        else:  # a piece of arguments: the frequent one
            arguments = quote(delta.text).encode("utf-8", "replace")
            added = b'"tool_calls":[{"index":%d,"function":{"arguments":%b}}]' % (delta.index, arguments)
        return b'id: %d%b%b},"finish_reason":null}]}\n\n' % (sequence, self._open_delta, added)

    def queued(self, ahead: int) -> bytes:
        """A comment line that joins the next event's block: OpenAI's clients have no such event."""
        return b": queued, %d ahead\n" % ahead

    def interrupted(self, last_id: int, error: ApiError) -> bytes:
        """The error chunk and [DONE], without ids: this response ends, the stream goes on (a
        resume with starting_after `last_id` continues it)."""
        body = openai_error_body(error, self.correlation_id)
        body["error"]["resume_after"] = last_id
        return b"data: %b\n\ndata: [DONE]\n\n" % dumps(body).encode("utf-8", "replace")

    def terminal(self, last_chunk: int, content_length: int, outcome: Outcome) -> bytes:
        """The finish chunk (and the usage chunk when asked), or the error chunk; then [DONE]."""
        event = b"id: %d\ndata: " % (last_chunk + 1)
        if outcome.error is not None:
            blocks = [dumps(openai_error_body(outcome.error, self.correlation_id)).encode("utf-8", "replace")]
        else:
            finish = dumps({"index": 0, "delta": {}, "finish_reason": openai_finish_reason(outcome.finish_reason)})
            blocks = [b'%b,"choices":[%b]}' % (self._head, finish.encode())]
            if self.include_usage:
                usage = dumps({**outcome.usage.as_dict(), "chatwait": outcome.ledger()})
                source = quote(outcome.usage.source)
                tail = b'"usage":%b,"usage_source":%b}' % (usage.encode(), source.encode())
                blocks.append(b'%b,"choices":[],%b' % (self._head, tail))
        blocks.append(b"[DONE]")
        return b"".join(event + block + b"\n\n" for block in blocks)


def writer(
    stream_id: str, correlation_id: str, model: str, created: float, options: Mapping[str, Any] | None
) -> OpenAIWriter:
    """The completion wire's writer of one stream; `options`: whether usage ends it (`include_usage`)."""
    return OpenAIWriter(stream_id, correlation_id, model, created, bool((options or {}).get("include_usage")))
