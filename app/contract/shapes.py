"""Which shape an error body takes, by the path it answers: the catalogue's own on the native
chat endpoints (and outside /v1/), OpenAI's `{"error": {...}}` on every other /v1/ path (an
OpenAI client may try any of them). Shared by the app's error handlers and the server shell's
own answers (414, 431, 408, 400 before the app sees a request)."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError
from .native import ErrorSchema
from .openai_errors import openai_error_body
from .openai_replies import OpenAIErrorSchema
from .serve import serialise

NATIVE_PREFIXES = ("/v1/chat/wait", "/v1/chat/streaming")


def openai_family(path: str) -> bool:
    """Whether errors on `path` take OpenAI's shape: /v1/ paths but the native chat endpoints."""
    return path.startswith("/v1/") and not path.startswith(NATIVE_PREFIXES)


def error_body(error: ApiError, correlation_id: str | None, path: str) -> dict[str, Any]:
    """The JSON body of `error` in the shape of `path`'s family."""
    if openai_family(path):
        conversation = "input" if path.startswith("/v1/responses") else "messages"
        return serialise(OpenAIErrorSchema, openai_error_body(error, correlation_id, conversation))
    return serialise(ErrorSchema, error.body(correlation_id))
