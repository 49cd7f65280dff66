"""A streamed chat completion read from the upstream's response: raw SSE lines to text pieces.

The body's `data:` lines are parsed with orjson (json for what orjson refuses, such as an
escaped lone surrogate), not by the SDK's streaming wrapper, which builds a pydantic object
per chunk. A reply that ends without a finish_reason is an error, not a success.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import gevent
import httpx
import orjson

from .base import Generation, UpstreamError, Usage

DRAIN_SECONDS = 0.2


class OpenAIGeneration(Generation):
    """A streamed chat completion read line by line from the upstream HTTP response."""

    def __init__(self, response: Any, idle_timeout: float) -> None:
        self._response = response
        self._idle_timeout = idle_timeout
        self.upstream_request_id = response.headers.get("x-request-id")

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._pieces()
        except httpx.TimeoutException:
            raise self._error(
                "upstream_timeout", f"No data from the model provider for {self._idle_timeout:g} s."
            ) from None
        except httpx.TransportError:
            raise self._error("upstream_interrupted", "The connection to the model provider broke mid-reply.") from None
        if self.finish_reason is None:
            raise self._error("upstream_interrupted", "The model provider ended the reply without a finish_reason.")

    def _pieces(self) -> Iterator[str]:
        response = self._response
        # Uncompressed (the usual case for SSE), the body's blocks are read from the transport's
        # stream itself, without httpx's decoder and chunker layers around each block.
        blocks = response.iter_bytes() if "content-encoding" in response.headers else response.stream
        lines = _lines(blocks)
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, `event:` and `id:` fields
            data = line[5:].strip()
            if data == b"[DONE]":
                _drain(lines)
                return
            content, finish_reason, usage = self._parse(data)
            if content:
                yield content
            if finish_reason:
                self.finish_reason = finish_reason
            if usage:
                self.usage = _usage(usage)

    def _parse(self, data: bytes) -> tuple[Any, Any, Any]:
        """The content, finish_reason and usage of one chunk; UpstreamError if it is not one."""
        try:
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                chunk = json.loads(data)  # what orjson refuses but json takes, such as an escaped lone surrogate
            if chunk.get("error"):
                raise self._error("upstream_interrupted", "The model provider reported an error mid-reply.")
            choices = chunk.get("choices")
            choice = choices[0] if choices else {}
            return (choice.get("delta") or {}).get("content"), choice.get("finish_reason"), chunk.get("usage")
        except (ValueError, AttributeError, TypeError, KeyError, IndexError):
            raise self._error("upstream_bad_response", "A streamed chunk is not a chat completion chunk.") from None

    def _error(self, code: str, detail: str) -> UpstreamError:
        return UpstreamError(code, detail, upstream_request_id=self.upstream_request_id)

    def close(self) -> None:
        """Close the upstream HTTP response; an unread body closes its connection."""
        self._response.close()


def _lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Split a byte stream into lines (LF or CRLF endings; the CR is left to `strip`)."""
    rest = b""
    for block in blocks:
        if rest:
            block = rest + block
        *complete, rest = block.split(b"\n")
        yield from complete
    if rest:
        yield rest


def _drain(lines: Iterator[bytes]) -> None:
    """Read the end of the body after [DONE] so the connection goes back to the pool.

    A server that keeps the body open after [DONE] gets DRAIN_SECONDS; its connection is then
    simply closed rather than reused.
    """
    with gevent.Timeout(DRAIN_SECONDS, False):
        for _ in lines:
            pass


def _usage(raw: Any) -> Usage | None:
    """The upstream's usage object, if it is a well-formed one (else we count ourselves)."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt, completion)
    return None
