"""A pool member that speaks Anthropic's Messages API (`kind = "anthropic"` in UPSTREAMS_FILE):
what every HTTP server shares (`httpapi.client`: the client, transport, timeouts and failure
classes), with Anthropic's endpoint (`messages` under the base URL), its key header
(`x-api-key`) and version header, its request body (`request`) and its event stream (`stream`)."""

from __future__ import annotations

from typing import Any

from ...config.controls import allowed_only
from ..base import Attempt
from ..call import ChatCall, Route
from ..httpapi.client import HttpProvider
from .request import ANTHROPIC_VERSION, messages_body
from .stream import AnthropicAttempt

BETA_HEADER = "anthropic-beta"  # a client's beta features, sent on with its own body


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
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if self.server.api_key:
            headers["x-api-key"] = self.server.api_key
        return headers

    def open(self, call: ChatCall, slot: Any = None, route: Route | None = None) -> Attempt:
        """Send the request (the client's own Messages body where it came in one); return once
        the upstream answered 200 with its headers."""
        beta = (call.native or {}).get("beta")
        body = allowed_only(messages_body(call), self.server.allow_fields)
        response = self.post(body, {BETA_HEADER: beta} if beta else None)
        upstream = self.settings.upstream
        return AnthropicAttempt(response, upstream.idle_timeout_seconds, upstream.upstream_max_line_bytes)
