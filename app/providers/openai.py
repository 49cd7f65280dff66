"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, LiteLLM, Azure).

The `openai` SDK builds and sends the request (auth, headers, error classes); the streamed
body is read as raw SSE lines and parsed with `json.loads`, which costs a few microseconds per
chunk where the SDK's pydantic objects cost tens. The SDK never retries (`max_retries=0`):
the relay is the one retry owner. Upstream error text is never copied into our errors.
"""

from __future__ import annotations

import email.utils
import json
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import openai

from .. import tokens
from ..config import Settings
from .base import ChatCall, Generation, Provider, UpstreamError, Usage


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
        loads = json.loads
        for line in self._response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, `event:` and `id:` fields
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = loads(data)
                choices = chunk.get("choices")
            except (ValueError, AttributeError):
                raise self._error("upstream_bad_response", "A streamed chunk was not a JSON object.") from None
            if chunk.get("error"):
                raise self._error("upstream_interrupted", "The model provider reported an error mid-reply.")
            if choices:
                choice = choices[0]
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield content
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
            usage = chunk.get("usage")
            if usage:
                self.usage = _usage(usage)

    def _error(self, code: str, detail: str) -> UpstreamError:
        return UpstreamError(code, detail, upstream_request_id=self.upstream_request_id)

    def close(self) -> None:
        """Close the upstream HTTP response; an unread body closes its connection."""
        self._response.close()


class OpenAIProvider(Provider):
    """Chat completions over HTTP with the `openai` SDK's sync client."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._include_usage = True
        timeout = httpx.Timeout(
            connect=min(10.0, settings.timeout_seconds),
            read=settings.idle_timeout_seconds,
            write=settings.timeout_seconds,
            pool=settings.timeout_seconds,
        )
        self._client = openai.OpenAI(
            api_key=settings.openai_api_key or "no-key-needed",
            base_url=settings.openai_base_url,
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultHttpxClient(
                timeout=timeout,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            ),
        )
        tokens.encoding()  # load the tokenizer now rather than on the first request

    def open(self, call: ChatCall) -> Generation:
        """Send the request; return once the upstream answered 200 with its headers."""
        try:
            return self._open(call, self._include_usage)
        except UpstreamError as error:
            if not (self._include_usage and error.upstream_status == 400):
                raise
        # Some compatible servers reject stream_options: ask once more without it.
        generation = self._open(call, include_usage=False)
        self._include_usage = False
        return generation

    def _open(self, call: ChatCall, include_usage: bool) -> Generation:
        options: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
        if call.temperature is not None:
            options["temperature"] = call.temperature
        manager = self._client.chat.completions.with_streaming_response.create(
            model=call.model, messages=call.messages, max_tokens=call.max_tokens, stream=True, **options
        )
        try:
            response = manager.__enter__()
        except openai.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.response.headers) from None
        except openai.APITimeoutError:
            raise UpstreamError("upstream_timeout", "The model provider did not answer in time.") from None
        except openai.APIConnectionError:
            raise UpstreamError("upstream_unavailable", "Could not connect to the model provider.") from None
        return OpenAIGeneration(response, self.settings.idle_timeout_seconds)

    def message_costs(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return tokens.message_costs(messages)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return tokens.prompt_tokens(messages)

    def completion_tokens(self, text: str) -> int:
        return tokens.count_text(text)

    def describe(self) -> dict[str, Any]:
        base = urllib.parse.urlsplit(str(self._client.base_url))
        return {
            "provider": self.name,
            "model": self.settings.default_model,
            "allowed_models": list(self.settings.allowed_models),
            "upstream": f"{base.scheme}://{base.hostname}{':%d' % base.port if base.port else ''}",
        }

    def close(self) -> None:
        self._client.close()


def _usage(raw: dict[str, Any]) -> Usage | None:
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt, completion)
    return None


_STATUS_ERRORS = {401: "upstream_auth_failed", 403: "upstream_auth_failed", 429: "upstream_rate_limited"}


def _status_error(status: int, headers: httpx.Headers) -> UpstreamError:
    """Classify an upstream HTTP error status; the body (which may echo the key) is ignored."""
    if status in _STATUS_ERRORS:
        code = _STATUS_ERRORS[status]
    elif status in (408, 409) or status >= 500:
        code = "upstream_unavailable"
    else:
        code = "upstream_rejected"
    return UpstreamError(
        code,
        f"The model provider answered HTTP {status}.",
        retry_after=retry_after_seconds(headers),
        upstream_status=status,
        upstream_request_id=headers.get("x-request-id"),
    )


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The delay asked for by `retry-after-ms` or `retry-after` (seconds or HTTP date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            parsed = email.utils.parsedate_tz(raw)
            if parsed is None:
                continue
            value = email.utils.mktime_tz(parsed) - time.time()
        if 0 <= value < 3600:  # also rejects nan
            return value
    return None
