"""A pool member that speaks Anthropic's Messages API (`kind = "anthropic"` in UPSTREAMS_FILE):
what every HTTP server shares (`httpapi.client`: the client, transport, timeouts and failure
classes), with Anthropic's endpoint (`messages` under the base URL), its key header
(`x-api-key`) and version header, its request body (`request`) and its event stream (`stream`)."""

from __future__ import annotations

from typing import Any

from ...config.controls import allowed_only
from ..base import Attempt, UpstreamError
from ..call import ChatCall, Route
from ..httpapi.client import HttpProvider
from .request import adapted, messages_body
from .stream import AnthropicAttempt

BETA_HEADER = "anthropic-beta"  # a client's beta features, sent on with its own body
VERSION_HEADER = "anthropic-version"  # the server's API version, or a client's with its own body


_CLIENT_HEADERS = ((BETA_HEADER, "beta"), (VERSION_HEADER, "version"))  # a client's own, with its own body


class AnthropicProvider(HttpProvider):
    """The Messages API over HTTP, to one server."""

    name = "anthropic"
    endpoint = "messages"
    models_path = "models?limit=1000"  # the most a page holds (20 unless asked)

    def takes(self, option: str, options: dict[str, Any]) -> bool:
        """Everything the translation carries (documents by data, id or URL too), but audio."""
        return option != "audio"

    def _identity(self) -> dict[str, str]:
        """Anthropic's key header (vLLM's and llama.cpp's servers take it too) and API version."""
        headers = {"Accept": "application/json", "User-Agent": "ChatWait"}
        headers[VERSION_HEADER] = self.server.anthropic_version
        if self.server.api_key:
            headers["x-api-key"] = self.server.api_key
        return headers

    def adaptations(self, call: ChatCall) -> tuple[str, ...]:
        """What translating `call` for this server changes of what its client asked (none for a
        client's own Messages body)."""
        try:
            return tuple(adapted(call, self.settings.rules_of(call.model), self.server.anthropic_version)[1])
        except UpstreamError:  # an option it cannot honour: the attempt refuses it, with its reason
            return ()

    def open(self, call: ChatCall, slot: Any = None, route: Route | None = None) -> Attempt:
        """Send the request (the client's own Messages body where it came in one, with its API
        version and beta features); return once the upstream answered 200 with its headers."""
        native = call.native or {}
        body = messages_body(call, self.settings.rules_of(call.model), self.server.anthropic_version)
        headers = {name: native[field] for name, field in _CLIENT_HEADERS if native.get(field)}
        response = self.post(allowed_only(body, self.server.allow_fields), headers or None)
        upstream = self.settings.upstream
        return AnthropicAttempt(response, upstream.idle_timeout_seconds, upstream.upstream_max_line_bytes)
