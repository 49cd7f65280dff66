"""What every model server ChatWait reaches over HTTP shares, whatever API it speaks: one httpx
client (timeouts, TLS, the keep-alive pool) whose requests go straight to the lean transport of
`http1` (httpx's own when a proxy is configured), headers encoded once, the POST that opens a
streamed reply, the reachability check, the failures' classes (`errors`) and the token counts.

Each request is an httpx request handed to the client's transport: an SDK's per-request
machinery (a body transformed through TypedDicts, request options built per call) is CPU that
queues every other stream's start on one worker. Nothing retries here: the relay is the one
retry owner. Upstream error text is never copied into our errors.
"""

from __future__ import annotations

import abc
import functools
import json
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from ...config import Settings, UpstreamServer
from ...traces import enabled as traces_enabled
from ...traces import inject, upstream
from ..base import Provider
from ..http1 import Http1Transport
from . import tokens
from .errors import MAX_REFUSAL_BYTES, checked_failure, refusal_reason, status_error, transport_error, unknown_model
from .models import MAX_LIST_BYTES, listed_models

CHECK_TIMEOUT_SECONDS = 3.0
# Answers to GET /models that still show the upstream reachable with valid credentials.
_REACHABLE = frozenset((404, 405, 429))
_CERT_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")  # where httpx's default context looks besides certifi


class HttpProvider(Provider):
    """One model server reached over HTTP; a subclass says how it is told the key and who is
    calling (`_identity`), where replies are asked for (`endpoint`) and how they are read (`open`)."""

    check_name = "upstream"
    endpoint = ""  # under the server's base URL
    models_path = "models"  # its list of models, under the base URL (GET)
    listed: frozenset[str] | None = None  # the names that list holds, where it is complete

    def __init__(self, settings: Settings, server: UpstreamServer | None = None) -> None:
        self.settings = settings
        self.server = server or settings.upstream.upstreams[0]
        timeout = httpx.Timeout(
            connect=min(10.0, settings.upstream.timeout_seconds),
            read=settings.upstream.idle_timeout_seconds,
            write=settings.upstream.timeout_seconds,
            pool=settings.upstream.timeout_seconds,
        )
        tls = _tls_context(settings.upstream.openai_ca_bundle, *(os.environ.get(name) for name in _CERT_VARIABLES))
        self._http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            verify=tls,
            transport=None if _proxied() else Http1Transport(tls),
        )
        self._base_url = httpx.URL(self.base_url())
        self._url = self._base_url.join(self.endpoint)
        self._timeout = timeout.as_dict()
        headers = self._request_headers()
        self._header_lines = headers.raw  # encoded once: a request adds only its Content-Length
        self._headers = headers
        self._host = self._url.host
        tokens.encoding()  # load the tokenizer now rather than on the first request

    def allowed_fields(self, model: str) -> frozenset[str]:
        return self.server.allow_fields

    def base_url(self) -> str:
        """The server's base URL, ending in a slash (requests' paths are joined under it)."""
        url = self.server.url or ""
        return url if url.endswith("/") else url + "/"

    @abc.abstractmethod
    def _identity(self) -> Mapping[str, str]:
        """The headers that tell this server who calls and with which key (its API's way)."""

    def _request_headers(self) -> httpx.Headers:
        """Every request's headers: the identity, JSON, and no compression (a token stream barely
        shrinks, and a compressed body could inflate without bound; one compressed anyway is refused)."""
        headers = httpx.Headers({"Host": self._url.netloc.decode("ascii")})
        for layer in (self._http.headers, self._identity()):
            headers.update(layer)  # later layers replace earlier ones, whatever the case of a name
        headers["Content-Type"] = "application/json"
        headers["Accept-Encoding"] = "identity"
        return headers

    def bodiless_headers(self) -> httpx.Headers:
        """The headers of a request without a body (a check, a stop)."""
        return httpx.Headers([line for line in self._header_lines if line[0].lower() != b"content-type"])

    def post(self, body: dict[str, Any], extra_headers: dict[str, str] | None = None) -> httpx.Response:
        """POST `body` to the endpoint; the response once the upstream answered 200 with its
        headers, else the UpstreamError its failure is."""
        content = _encode_body(body)
        headers = httpx.Headers(self._headers)  # a copy of the headers encoded once
        headers["Content-Length"] = str(len(content))
        if extra_headers:
            headers.update(extra_headers)
        if traces_enabled():  # the attempt's span: its traceparent, and the server it reaches
            carrier: dict[str, str] = {}
            inject(carrier)
            headers.update(carrier)
            upstream(self._host, self._url.port, self.name)
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
            failure = status_error(response.status_code, response.headers, reason)
            if response.status_code == 404:
                raise unknown_model(failure, body.get("model"), self.listed)
            raise failure
        return response

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
        """GET /models with this service's credentials: reachable and accepted, or why not, in an
        operator's words with the setting to look at; keeps the server's list of models."""
        request = httpx.Request(
            "GET",
            self._base_url.join(self.models_path),
            headers=self.bodiless_headers(),
            extensions={"timeout": httpx.Timeout(min(CHECK_TIMEOUT_SECONDS, self._timeout["write"])).as_dict()},
        )
        self.listed = None
        try:
            response = self._send(request)
        except httpx.TransportError as exc:
            return False, checked_failure(transport_error(exc, self._host), origin(self.server.url), self.server)
        try:
            if response.status_code == 200:
                self.listed = listed_models(_bounded_body(response, MAX_LIST_BYTES), self._host)
        except (httpx.HTTPError, httpx.StreamError):
            pass  # the list could not be read whole: no model is judged by it
        finally:
            response.close()
        if response.status_code < 300 or response.status_code in _REACHABLE:
            return True, f"GET /models answered HTTP {response.status_code}."
        failure = status_error(response.status_code, response.headers)
        return False, checked_failure(failure, origin(self.server.url), self.server)

    def listed_models(self) -> frozenset[str] | None:
        return self.listed

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
            "allowed_models": list(self.settings.upstream.allowed_models),
            "upstream": origin(self.server.url),
        }

    def close(self) -> None:
        self._http.close()


def origin(base_url: str | None) -> str:
    """A server's scheme, host and port, as /ready shows it: never a credential or a path."""
    parts = urllib.parse.urlsplit(base_url or "https://api.openai.com/v1")
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _bounded_body(response: httpx.Response, limit: int) -> bytes:
    """The answer's body, or as much of it as shows it is longer than `limit` bytes."""
    body = bytearray()
    for piece in [response.content] if response.is_stream_consumed else response.iter_raw():  # a mock's: read
        body += piece
        if len(body) > limit:
            break
    return bytes(body)


def _refusal(response: httpx.Response) -> str | None:
    """Why a 400 refused the request (`refusal_reason`), from at most MAX_REFUSAL_BYTES of its body."""
    try:
        body = _bounded_body(response, MAX_REFUSAL_BYTES)
    except (httpx.HTTPError, httpx.StreamError):
        return None
    if len(body) >= MAX_REFUSAL_BYTES:
        return None  # longer than any error object: it says nothing we read
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


@functools.cache
def _tls_context(ca_bundle: Path | None, *_variables: str | None) -> ssl.SSLContext:
    """The context that verifies the upstream's certificate: OPENAI_CA_BUNDLE's authorities if
    set, else httpx's defaults (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set: the other
    arguments). One per process for the same arguments: the authorities are loaded once, not
    once for each server of a pool."""
    context = httpx.create_ssl_context() if ca_bundle is None else ssl.create_default_context(cafile=str(ca_bundle))
    context.set_alpn_protocols(["http/1.1"])
    return context
