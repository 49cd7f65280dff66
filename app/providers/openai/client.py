"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, LiteLLM, Azure).

The `openai` SDK's client is configured once (base URL, including its OPENAI_BASE_URL default;
authentication; its standard headers; the httpx client with its timeouts), and each request
is an httpx request with those headers, handed to that client's transport: the lean HTTP/1.1
transport of `http1` (httpx's own when a proxy is configured). The SDK's per-request machinery
is skipped on purpose: `chat.completions.create` transforms the body through TypedDicts and
builds request options, CPU that queues every other stream's start on one worker; here the
body is plain JSON, and the streamed body is read by `stream`. Nothing retries here:
the relay is the one retry owner. Upstream error text is never copied into our errors.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import gevent
import httpx
import openai
import orjson
from gevent.pool import Pool

from ...config import Settings, UpstreamServer
from ...errors import CATALOGUE
from ...logs import log_greenlet_failure
from ..base import Attempt, ChatCall, Provider, Route, UpstreamError
from ..http1 import Http1Transport
from . import tokens
from .errors import MAX_REFUSAL_BYTES, STREAM_OPTIONS, refusal_reason, status_error, transport_error
from .stream import OpenAIAttempt

log = logging.getLogger("chatwait.openai")

CHECK_TIMEOUT_SECONDS = 3.0
STOP_TIMEOUT_SECONDS = 2.0  # for an upstream ChatWait to answer the stop of its stream
STOPS_AT_ONCE = 64  # stops sent upstream at a time; more at once (a mass cancel) are skipped
# Answers to GET /models that still show the upstream reachable with valid credentials.
_REACHABLE = frozenset((404, 405, 429))


class OpenAIProvider(Provider):
    """Chat completions over HTTP with the `openai` SDK's sync client, to one server (a pool's
    member: `providers.pool`)."""

    name = "openai"
    check_name = "upstream"
    endpoint = "chat/completions"  # under the server's base URL

    def __init__(self, settings: Settings, server: UpstreamServer | None = None) -> None:
        self.settings = settings
        self.server = server or settings.upstreams[0]
        self._include_usage = True
        timeout = httpx.Timeout(
            connect=min(10.0, settings.timeout_seconds),
            read=settings.idle_timeout_seconds,
            write=settings.timeout_seconds,
            pool=settings.timeout_seconds,
        )
        tls = _tls_context(settings)
        self._http = openai.DefaultHttpxClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            verify=tls,
            transport=None if _proxied() else Http1Transport(tls),
        )
        sdk = openai.OpenAI(
            api_key=self.server.api_key or "no-key-needed",
            base_url=self.server.url,
            max_retries=0,
            timeout=timeout,
            http_client=self._http,
        )
        self._base_url = sdk.base_url
        self._url = sdk.base_url.join(self.endpoint)
        self._timeout = timeout.as_dict()
        headers = self._request_headers(sdk)
        self._header_lines = headers.raw  # encoded once: a request adds only its Content-Length
        self._headers = headers
        self._host = self._url.host
        self._stops = Pool(STOPS_AT_ONCE)
        tokens.encoding()  # load the tokenizer now rather than on the first request

    def _request_headers(self, sdk: openai.OpenAI) -> httpx.Headers:
        """Every request's headers: the SDK's standard ones, the key as this server takes it, JSON
        and no compression (a token stream barely shrinks, and a compressed body could inflate
        without bound; an answer compressed anyway is refused)."""
        headers = httpx.Headers({"Host": self._url.netloc.decode("ascii")})
        for layer in (self._http.headers, {k: v for k, v in sdk.default_headers.items() if isinstance(v, str)}):
            headers.update(layer)  # later layers replace earlier ones, whatever the case of a name
        headers.pop("Authorization", None)  # the SDK's default headers hold it: said once, the server's way
        headers.update(self._auth_headers(sdk))
        headers.update({"X-Stainless-Retry-Count": "0", "Content-Type": "application/json"})
        headers["Accept-Encoding"] = "identity"
        return headers

    def _auth_headers(self, sdk: openai.OpenAI) -> dict[str, str]:
        """How this server is told the key (OpenAI's API: a bearer token)."""
        return dict(sdk.auth_headers)

    def open(self, call: ChatCall, slot: Any = None, route: Route | None = None) -> Attempt:
        """Send the request; return once the upstream answered 200 with its headers."""
        try:
            return self._open(call, self._include_usage)
        except UpstreamError as error:
            # A refusal that says why, and not for stream_options, is never sent again.
            unsaid = error.log_fields.get("upstream_refused") in (None, STREAM_OPTIONS)
            plain = error.error_code == "upstream_rejected" and error.upstream_status == 400
            if not (self._include_usage and plain and unsaid):
                raise
        # Some compatible servers reject stream_options: ask once more without it.
        generation = self._open(call, include_usage=False)
        self._include_usage = False
        return generation

    def _open(self, call: ChatCall, include_usage: bool) -> Attempt:
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
        if call.options:
            body.update(call.options)
        native = call.native
        if native is not None and native.get("api") == "chat_completions":
            body = {**native["fields"], **body}  # what ChatWait does not know, as sent; its own fields win
            if "tools" in native and "tools" in body:
                body["tools"] = native["tools"]  # with the fields of theirs ChatWait does not know
        response = self.post(body)
        return OpenAIAttempt(
            response, self.settings.idle_timeout_seconds, self.settings.upstream_max_line_bytes, self._stop_stream
        )

    def post(self, body: dict[str, Any], extra_headers: dict[str, str] | None = None) -> httpx.Response:
        """POST `body` to the endpoint; the response once the upstream answered 200 with its
        headers, else the UpstreamError its failure is."""
        content = _encode_body(body)
        headers = httpx.Headers(self._headers)  # a copy of the headers encoded once
        headers["Content-Length"] = str(len(content))
        if extra_headers:
            headers.update(extra_headers)
        request = httpx.Request(  # the same request as `content=` makes
            "POST",
            self._url,
            headers=headers,
            stream=httpx.ByteStream(content),
            extensions={"timeout": self._timeout},
        )
        try:
            response = self._send(request)
        except httpx.TransportError as exc:
            raise transport_error(exc, self._host) from None
        if response.status_code != 200:
            reason = _refusal(response) if response.status_code == 400 else None
            response.close()  # the body is not passed on: it may echo the key
            raise status_error(response.status_code, response.headers, reason)
        return response

    def _stop_stream(self, stream_id: str) -> None:
        """Ask the upstream (a ChatWait, which named its stream) to stop generating it, in the
        background, within STOP_TIMEOUT_SECONDS: closing the connection alone does not stop it."""
        if self._stops.full():
            log.warning("upstream_stop_skipped", extra={"upstream_stream_id": stream_id})
            return
        self._stops.spawn(self._send_stop, stream_id).link_exception(log_greenlet_failure)

    def _send_stop(self, stream_id: str) -> None:
        request = httpx.Request(
            "DELETE",
            self._base_url.join(f"chat/completions/{stream_id}/stream"),
            headers=httpx.Headers([line for line in self._header_lines if line[0].lower() != b"content-type"]),
            extensions={"timeout": httpx.Timeout(STOP_TIMEOUT_SECONDS).as_dict()},
        )
        try:
            with gevent.Timeout(STOP_TIMEOUT_SECONDS):
                response = self._send(request)
                response.close()  # the body is not read
        except (httpx.HTTPError, gevent.Timeout) as error:
            failed = {"upstream_stream_id": stream_id, "error_type": type(error).__name__}
            log.warning("upstream_stop_failed", extra=failed)
            return
        sent = {"upstream_stream_id": stream_id, "upstream_status": response.status_code}
        log.info("upstream_stop_sent", extra=sent)

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Hand the request to the client's transport for its URL, as `Client.send` would.

        `Client.send` adds cookie handling, auth and redirect flows that these requests never
        use. `_transport_for_url` is the step that still applies (it picks a proxy mount when
        one is configured), and it is the hook respx's httpx mocker patches.
        """
        response = self._http._transport_for_url(request.url).handle_request(request)
        response.request = request
        return response

    def check(self) -> tuple[bool, str]:
        """GET /models with this service's credentials: reachable and accepted, or why not."""
        request = httpx.Request(
            "GET",
            self._base_url.join("models"),
            headers=httpx.Headers([line for line in self._header_lines if line[0].lower() != b"content-type"]),
            extensions={"timeout": httpx.Timeout(min(CHECK_TIMEOUT_SECONDS, self.settings.timeout_seconds)).as_dict()},
        )
        try:
            response = self._send(request)
        except httpx.TransportError as exc:
            failure = transport_error(exc, self._host)
            return False, f"{CATALOGUE[failure.error_code].message} {failure.detail}"
        response.close()  # the body is not read
        if response.status_code < 300 or response.status_code in _REACHABLE:
            return True, f"GET /models answered HTTP {response.status_code}."
        failure = status_error(response.status_code, response.headers)
        return False, f"{CATALOGUE[failure.error_code].message} {failure.detail}"

    def message_costs(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return tokens.message_costs(messages)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return tokens.prompt_tokens(messages)

    def prompt_tokens_bound(self, messages: Sequence[dict[str, str]]) -> int:
        return tokens.prompt_tokens_bound(messages)

    def completion_tokens(self, text: str) -> int:
        return tokens.count_text(text)

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.settings.default_model,
            "allowed_models": list(self.settings.allowed_models),
            "upstream": origin(self.server.url),
        }

    def close(self) -> None:
        self._stops.join(timeout=STOP_TIMEOUT_SECONDS)  # stops still on their way
        self._http.close()


def origin(base_url: str | None) -> str:
    """A server's scheme, host and port, as /ready shows it: never a credential or a path."""
    parts = urllib.parse.urlsplit(base_url or "https://api.openai.com/v1")
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _refusal(response: httpx.Response) -> str | None:
    """Why a 400 refused the request (`refusal_reason`), from at most MAX_REFUSAL_BYTES of its body."""
    body = b""
    try:
        pieces = [response.content] if response.is_stream_consumed else response.iter_raw()  # read: a mock's
        for piece in pieces:
            body += piece
            if len(body) >= MAX_REFUSAL_BYTES:
                return None  # longer than any error object: it says nothing we read
    except (httpx.HTTPError, httpx.StreamError):
        return None
    return refusal_reason(body)


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


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """The context that verifies the upstream's certificate: OPENAI_CA_BUNDLE's authorities if
    set, else httpx's defaults (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set)."""
    if settings.openai_ca_bundle is not None:
        context = ssl.create_default_context(cafile=str(settings.openai_ca_bundle))
    else:
        context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
