"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, LiteLLM, Azure).

Requests carry what the `openai` SDK's client makes of the base URL (its default included), the
key and its standard headers (`identity`), and are sent as every HTTP server's are
(`httpapi.client`). The streamed body
is read by `stream`. An upstream that is a ChatWait is told to stop a stream a client stopped.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
import httpx
from gevent.pool import Pool

from ...config import Settings, UpstreamServer
from ...config.controls import allowed_only
from ..base import Attempt, UpstreamError
from ..call import ChatCall, Route
from ..httpapi.client import HttpProvider
from ..httpapi.errors import STREAM_OPTIONS
from . import identity
from .stream import OpenAIAttempt

log = logging.getLogger("chatwait.openai")

STOP_TIMEOUT_SECONDS = 2.0  # for an upstream ChatWait to answer the stop of its stream
STOPS_AT_ONCE = 64  # stops sent upstream at a time; more at once (a mass cancel) are skipped


class OpenAIProvider(HttpProvider):
    """Chat completions over HTTP to one server (a pool's member: `providers.pool`), identified
    as the `openai` SDK's sync client would be."""

    name = "openai"
    endpoint = "chat/completions"

    def takes(self, option: str, options: dict[str, Any]) -> bool:
        """Everything the server itself may refuse, but a file by URL: chat completions has none."""
        return option != "file_urls"

    def chunk_tokens(self, route: Route) -> bool:
        return True

    def __init__(self, settings: Settings, server: UpstreamServer | None = None) -> None:
        self._include_usage = True
        super().__init__(settings, server)
        self._stops = Pool(STOPS_AT_ONCE)

    def base_url(self) -> str:
        return identity.base_url(self.server.url)

    def _identity(self) -> dict[str, str]:
        """The SDK's standard headers and its bearer token, no retries counted."""
        headers = identity.headers(self.server.api_key or "no-key-needed")
        return {**headers, "X-Stainless-Retry-Count": "0"}

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
            fields = allowed_only(native["fields"], self.server.allow_fields)
            body = {**fields, **body}  # what ChatWait does not know, as sent; its own fields win
            if "tools" in native and "tools" in body:
                body["tools"] = native["tools"]  # with the fields of theirs ChatWait does not know
        response = self.post(body)
        upstream = self.settings.upstream
        seconds, line_bytes = upstream.idle_timeout_seconds, upstream.upstream_max_line_bytes
        return OpenAIAttempt(response, seconds, line_bytes, self._stop_stream)

    def _stop_stream(self, stream_id: str) -> None:
        """Ask the upstream (a ChatWait, which named its stream) to stop generating it, in the
        background, within STOP_TIMEOUT_SECONDS: closing the connection alone does not stop it."""
        if self._stops.full():
            log.warning("upstream_stop_skipped", extra={"upstream_stream_id": stream_id})
            return
        self._stops.spawn(self._send_stop, stream_id)

    def _send_stop(self, stream_id: str) -> None:
        request = httpx.Request(
            "DELETE",
            self._base_url.join(f"chat/completions/{stream_id}/stream"),
            headers=self.bodiless_headers(),
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

    def close(self) -> None:
        self._stops.join(timeout=STOP_TIMEOUT_SECONDS)  # stops still on their way
        super().close()
