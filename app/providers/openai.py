"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, LiteLLM, Azure).

The `openai` SDK's client is configured once (base URL, including its OPENAI_BASE_URL default;
authentication; its standard headers; the httpx client with its timeouts), and each request
is an httpx request with those headers, handed to that client's transport: the lean HTTP/1.1
transport of `http1.py` (httpx's own when a proxy is configured). The SDK's per-request
machinery is skipped on purpose: `chat.completions.create` transforms the body through
TypedDicts and builds request options (together over a millisecond of CPU per request, which
queues every other stream's start on one worker), and its streaming wrapper builds a pydantic
object per chunk (tens of microseconds); here the body is plain JSON and the streamed body is
read as raw SSE lines parsed with orjson (json for what orjson refuses). Nothing retries here: the relay is the one
retry owner. Upstream error text is never copied into our errors.
"""

from __future__ import annotations

import email.utils
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import gevent
import httpx
import openai
import orjson

from .. import tokens
from ..config import Settings
from .base import ChatCall, Generation, Provider, UpstreamError, Usage
from .http1 import Http1Transport

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
        loads, fast_loads = json.loads, orjson.loads
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
            try:
                try:
                    chunk = fast_loads(data)
                except orjson.JSONDecodeError:
                    chunk = loads(data)  # what orjson refuses but json takes, such as an escaped lone surrogate
                if chunk.get("error"):
                    raise self._error("upstream_interrupted", "The model provider reported an error mid-reply.")
                choices = chunk.get("choices")
                choice = choices[0] if choices else {}
                content = (choice.get("delta") or {}).get("content")
                finish_reason = choice.get("finish_reason")
                usage = chunk.get("usage")
            except (ValueError, AttributeError, TypeError, KeyError, IndexError):
                raise self._error("upstream_bad_response", "A streamed chunk is not a chat completion chunk.") from None
            if content:
                yield content
            if finish_reason:
                self.finish_reason = finish_reason
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
        self._http = openai.DefaultHttpxClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            transport=None if _proxied() else Http1Transport(),
        )
        sdk = openai.OpenAI(
            api_key=settings.openai_api_key or "no-key-needed",
            base_url=settings.openai_base_url,
            max_retries=0,
            timeout=timeout,
            http_client=self._http,
        )
        self._base_url = sdk.base_url
        self._url = sdk.base_url.join("chat/completions")
        self._timeout = timeout.as_dict()
        headers = httpx.Headers(
            {
                "Host": self._url.netloc.decode("ascii"),
                **self._http.headers,
                **{k: v for k, v in sdk.default_headers.items() if isinstance(v, str)},
                **sdk.auth_headers,
                "X-Stainless-Retry-Count": "0",
                "Content-Type": "application/json",
            }
        )
        self._header_lines = headers.raw  # encoded once: a request adds only its Content-Length
        tokens.encoding()  # load the tokenizer now rather than on the first request

    def open(self, call: ChatCall, slot: Any = None) -> Generation:
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
        body: dict[str, Any] = {
            "model": call.model,
            "messages": call.messages,
            "max_tokens": call.max_tokens,
            "stream": True,
        }
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        if call.temperature is not None:
            body["temperature"] = call.temperature
        content = _encode_body(body)
        request = httpx.Request(  # the same request as `content=` makes, from headers encoded once
            "POST",
            self._url,
            headers=httpx.Headers([*self._header_lines, (b"Content-Length", b"%d" % len(content))]),
            stream=httpx.ByteStream(content),
            extensions={"timeout": self._timeout},
        )
        try:
            response = self._send(request)
        except httpx.TimeoutException:
            raise UpstreamError("upstream_timeout", "The model provider did not answer in time.") from None
        except httpx.TransportError:
            raise UpstreamError("upstream_unavailable", "Could not connect to the model provider.") from None
        if response.status_code >= 400:
            response.close()  # the body is not read: it may echo the key
            raise _status_error(response.status_code, response.headers)
        return OpenAIGeneration(response, self.settings.idle_timeout_seconds)

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Hand the request to the client's transport for its URL, as `Client.send` would.

        `Client.send` adds cookie handling, auth and redirect flows that these requests never
        use, and they cost about 0.35 ms of CPU per request. `_transport_for_url` is the step
        that still applies (it picks a proxy mount when one is configured), and it is the hook
        respx's httpx mocker patches, so tests mock these requests as before.
        """
        response = self._http._transport_for_url(request.url).handle_request(request)
        response.request = request
        return response

    def message_costs(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return tokens.message_costs(messages)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return tokens.prompt_tokens(messages)

    def prompt_tokens_bound(self, messages: Sequence[dict[str, str]]) -> int:
        return tokens.prompt_tokens_bound(messages)

    def completion_tokens(self, text: str) -> int:
        return tokens.count_text(text)

    def describe(self) -> dict[str, Any]:
        base = urllib.parse.urlsplit(str(self._base_url))
        return {
            "provider": self.name,
            "model": self.settings.default_model,
            "allowed_models": list(self.settings.allowed_models),
            "upstream": f"{base.scheme}://{base.hostname}{':%d' % base.port if base.port else ''}",
        }

    def close(self) -> None:
        self._http.close()


def _encode_body(body: dict[str, Any]) -> bytes:
    """The request body as compact UTF-8 JSON: orjson, or json for what orjson refuses."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _proxied() -> bool:
    """Whether proxy environment variables are set (then httpx's own transport handles them)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


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
