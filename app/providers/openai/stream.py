"""A streamed chat completion read from the upstream's response: raw SSE lines to text pieces
and typed deltas (reasoning, refusals, tool calls: `deltas`).

The body's `data:` lines are parsed with orjson (json for what orjson refuses, such as an
escaped lone surrogate), not by the SDK's streaming wrapper, which builds a pydantic object
per chunk. A reply that ends without a finish_reason is an error, not a success; one that
reached `[DONE]` is complete, however its connection ends. A chunk that is not a chat
completion chunk (or whose content is not text) is skipped and logged, up to MAX_SKIPPED_CHUNKS
a reply; past them, or on what is no OpenAI stream at all (a compressed body, a line over
UPSTREAM_MAX_LINE_BYTES, a broken tool call), the generation ends with upstream_bad_response.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from ..base import reply_id
from ..call import Usage
from ..deltas import LOGPROBS, REASONING, REFUSAL, Delta
from ..httpapi.stream import MAX_FINISH_REASON_CHARS, HttpAttempt, count
from ..tool_calls import MalformedToolCall, ToolCalls

MAX_LOGPROB_ENTRIES = 256  # a chunk's tokens with log probabilities (one or a few, from any server)
MAX_TOP_LOGPROBS = 20  # alternatives per token, as OpenAI's API bounds top_logprobs
_NO_DELTA: dict[str, Any] = {}
_STREAM_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # an upstream ChatWait's X-Stream-Id


class OpenAIAttempt(HttpAttempt):
    """A streamed chat completion read from the upstream HTTP response (`httpapi.stream`'s frame)."""

    chunks = "chat completion chunks"
    ending = "a finish_reason"

    def __init__(
        self,
        response: Any,
        idle_timeout: float,
        max_line: int,
        stop_upstream: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(response, idle_timeout, max_line, response.headers.get("x-request-id"))
        stream_id = response.headers.get("x-stream-id", "")
        # An upstream that names its stream (a ChatWait) is told to stop it: `stop_upstream(id)`.
        self._upstream_stream = stream_id if stop_upstream and _STREAM_ID.fullmatch(stream_id) else None
        self._stop_upstream = stop_upstream
        self._tool_calls = ToolCalls()
        self._cache_n = 0  # prompt tokens read from the server's cache, as llama.cpp's `timings` say

    def _read(self, payloads: list[bytes], found: list[str | Delta]) -> None:
        for data in payloads:
            if data == b"[DONE]":
                self._ended = True
                return
            try:
                content, finish_reason, usage, delta, logprobs = self._parse(data)
            except _Malformed:
                self._skip()
                continue
            if logprobs:
                found.append(Delta(LOGPROBS, content or "", data=self._logprobs(logprobs)))
            elif content:
                found.append(content)
            if len(delta) > 1 or content is None:  # more than text: reasoning, a refusal, tool calls
                found += self._typed(delta)
            if finish_reason:
                self.finish(finish_reason)
            if usage:
                self.usage = _usage(usage, self._cache_n)

    def _check_whole(self) -> None:
        if self._tool_calls.unnamed():
            raise self._error("upstream_bad_response", "A streamed tool call never got its name.")

    def _parse(self, data: bytes) -> tuple[Any, Any, Any, dict[str, Any], Any]:
        """The content, finish_reason, usage, delta and log probabilities (the tokens' entries, where
        the client asked for them) of one chunk; _Malformed if it is not one."""
        try:
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                chunk = json.loads(data)  # what orjson refuses but json takes, such as an escaped lone surrogate
            if chunk.get("error"):
                raise self._error("upstream_interrupted", "The model provider reported an error mid-reply.")
            if self.response_id is None:
                self.response_id = reply_id(chunk.get("id"))
            choices = chunk.get("choices")
            choice = choices[0] if choices else {}
            delta = choice.get("delta") or _NO_DELTA
            content, finish_reason = delta.get("content"), choice.get("finish_reason")
            logprobs = choice.get("logprobs")
            if logprobs:
                logprobs = logprobs.get("content")
        except (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError):
            raise _Malformed from None
        if (content is not None and type(content) is not str) or (
            finish_reason is not None
            and (type(finish_reason) is not str or len(finish_reason) > MAX_FINISH_REASON_CHARS)
        ):
            raise _Malformed
        timings = chunk.get("timings")
        if timings:
            self._timed(timings)
        return content, finish_reason, chunk.get("usage"), delta, logprobs

    def _timed(self, timings: Any) -> None:
        """llama.cpp's `timings`: how much of the prompt its cache held (`cache_n`), for the usage."""
        cached = timings.get("cache_n") if isinstance(timings, dict) else None
        if count(cached):
            self._cache_n = cached
            if self.usage is not None and not self.usage.cached_tokens and cached <= self.usage.prompt_tokens:
                self.usage = dataclasses.replace(self.usage, cached_tokens=cached)

    def _typed(self, delta: dict[str, Any]) -> list[Delta]:
        """The reasoning, refusal and tool-call deltas of one chunk's delta, in that order."""
        calls = delta.get("tool_calls")
        found = []
        if not calls or len(delta) > 1:  # a piece of a tool call usually comes alone
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")  # DeepSeek, vLLM, llama.cpp; others
            if reasoning:
                found.append(Delta(REASONING, self._text(reasoning)))
            refusal = delta.get("refusal")
            if refusal:
                found.append(Delta(REFUSAL, self._text(refusal)))
        if calls:
            try:
                found += self._tool_calls.feed(calls)
            except MalformedToolCall:
                raise self._error("upstream_bad_response", "A streamed tool call is not one.") from None
        return found

    def _logprobs(self, entries: Any) -> list[dict[str, Any]]:
        """A chunk's log-probability entries, as OpenAI shapes them (bounded in number)."""
        if (
            type(entries) is not list
            or len(entries) > MAX_LOGPROB_ENTRIES
            or not all(
                type(entry) is dict
                and type(entry.get("token")) is str
                and len(entry.get("top_logprobs") or ()) <= MAX_TOP_LOGPROBS
                for entry in entries
            )
        ):
            raise self._error("upstream_bad_response", "A streamed chunk's logprobs are not OpenAI's token entries.")
        return entries

    def _text(self, value: Any) -> str:
        if type(value) is not str:
            raise self._error("upstream_bad_response", "A streamed chunk's reasoning or refusal is not text.")
        return value

    def stop(self) -> None:
        """Close, and ask an upstream that named its stream to stop generating it."""
        self.close()
        if self._upstream_stream is not None and self.finish_reason is None and self._stop_upstream is not None:
            self._stop_upstream(self._upstream_stream)
            self._upstream_stream = None


class _Malformed(Exception):
    """A streamed chunk that is not a chat completion chunk (skipped, within bounds)."""


def _usage(raw: Any, cache_n: int = 0) -> Usage | None:
    """The upstream's usage object, if it is a well-formed one (else we count ourselves); the
    cached part of its prompt from its details, else from llama.cpp's `cache_n`."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if not (count(prompt) and count(completion)):
        return None
    details = raw.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    produced = raw.get("completion_tokens_details")
    reasoning = produced.get("reasoning_tokens") if isinstance(produced, dict) else None
    reasoning = reasoning if count(reasoning) and reasoning <= completion else 0
    cached, written = details.get("cached_tokens"), details.get("cache_write_tokens")
    cached = cached if count(cached) else cache_n
    cached = cached if count(cached) and cached <= prompt else 0
    written = written if count(written) and written <= prompt - cached else 0
    return Usage(prompt, completion, cached_tokens=cached, cache_write_tokens=written, reasoning_tokens=reasoning)
