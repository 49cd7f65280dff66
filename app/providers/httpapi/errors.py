"""How an HTTP model server's failures (OpenAI-compatible or Messages API) are classified into catalogue errors.

Only the status, a few headers, the kind of exception and (for a 400) the code and words of its
error object are read: the upstream's body (which may echo the API key) and its error text
never reach a client or a log line. A 400 that refuses the request for its content says why in
ChatWait's words: the conversation too long for the model (`input_too_long`, OpenAI's
`context_length_exceeded`), or the provider's content policy (`content_policy_violation`).
"""

from __future__ import annotations

import email.utils
import json
import ssl
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ...config import UpstreamServer
from ..base import UpstreamError
from ..http1 import MalformedResponse

_STATUS_ERRORS = {401: "upstream_auth_failed", 403: "upstream_auth_failed", 429: "upstream_rate_limited"}
# Delay headers, most precise first: OpenAI's milliseconds, LiteLLM's forwarded provider delay, HTTP's.
_RETRY_AFTER_HEADERS = (("retry-after-ms", 0.001), ("llm_provider-retry-after", 1.0), ("retry-after", 1.0))
MAX_LOCATION_CHARS = 200
MAX_REFUSAL_BYTES = 16_384  # of a 400's body, read to learn why (an error object is far shorter)
CONTEXT, CONTENT, STREAM_OPTIONS, PREFILL = "context_length", "content_policy", "stream_options", "prefill"
# How providers say why they refused: error codes and types, then words of their messages.
_CONTEXT_CODES = frozenset(("context_length_exceeded", "string_above_max_length", "exceed_context_size_error"))
_CONTENT_CODES = frozenset(("content_filter", "content_policy_violation", "invalid_prompt", "moderation_blocked"))
_CONTEXT_WORDS = (
    "maximum context length",
    "context length",
    "context size",
    "context window",
    "too many tokens",
    "prompt is too long",  # Anthropic's
)
_CONTENT_WORDS = ("content management policy", "content policy", "content filter", "safety system")
_PREFILL_WORDS = ("prefill", "final assistant message", "continue_final_message")
_REFUSALS = {
    CONTEXT: ("input_too_long", "The model provider says the conversation is longer than the model's context."),
    CONTENT: ("content_policy_violation", "The model provider refused the request under its content policy."),
}


def refusal_reason(body: bytes) -> str | None:
    """Why a 400 refused the request, from its error object: CONTEXT, CONTENT, STREAM_OPTIONS
    (a server that takes no stream_options), PREFILL (one that continues no assistant message),
    or None (it does not say)."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    said = {str(error.get(name)).lower() for name in ("code", "type", "param")}
    words = str(error.get("message", ""))[:MAX_REFUSAL_BYTES].lower()
    if said & _CONTEXT_CODES or any(phrase in words for phrase in _CONTEXT_WORDS):
        return CONTEXT
    if said & _CONTENT_CODES or any(phrase in words for phrase in _CONTENT_WORDS):
        return CONTENT
    if STREAM_OPTIONS in said or STREAM_OPTIONS in words or "include_usage" in words:
        return STREAM_OPTIONS
    if any(phrase in words for phrase in _PREFILL_WORDS):
        return PREFILL
    return None


def status_error(status: int, headers: Mapping[str, str], reason: str | None = None) -> UpstreamError:
    """Classify an upstream answer other than 200 from its status (and a redirect's Location;
    a 400's `reason`, from `refusal_reason`)."""
    log_fields: dict[str, str] = {"upstream_refused": reason} if reason else {}
    if reason in _REFUSALS:
        code, detail = _REFUSALS[reason]
        said = {"upstream_status": status, "upstream_request_id": headers.get("x-request-id"), "log_fields": log_fields}
        return UpstreamError(code, detail, **said)
    if status in _STATUS_ERRORS:
        code = _STATUS_ERRORS[status]
    elif status in (408, 409) or status >= 500:
        code = "upstream_unavailable"
    else:  # other 4xx, and 3xx: a redirect is not followed (it could lead the key anywhere)
        code = "upstream_rejected"
        if 300 <= status < 400:
            log_fields["upstream_location"] = headers.get("location", "")[:MAX_LOCATION_CHARS]
    detail = f"The model provider answered HTTP {status}."
    if 300 <= status < 400:
        detail = f"The model provider answered HTTP {status}, a redirect; redirects are not followed."
    return UpstreamError(
        code,
        detail,
        retry_after=retry_after_seconds(headers),
        upstream_status=status,
        upstream_request_id=headers.get("x-request-id"),
        log_fields=log_fields,
    )


def unknown_model(failure: UpstreamError, model: Any, listed: frozenset[str] | None) -> UpstreamError:
    """A 404 to a generation: the server does not know the model (by name), or, where its list
    holds the name, the address's path is wrong (the 404's own classification then)."""
    if not isinstance(model, str) or (listed is not None and model in listed):
        return failure
    detail = f"The model server answered HTTP 404 to the model {model[:200]!r}: it does not know that model name."
    said = {"upstream_request_id": failure.upstream_request_id, "log_fields": failure.log_fields}
    return UpstreamError("upstream_model_unknown", detail, upstream_status=404, retry_after=failure.retry_after, **said)


# What an operator does about a failed check, by the failure's catalogue code.
_CHECK_ADVICE = {
    "upstream_auth_failed": "It refused this service's credentials: check {key}.",
    "upstream_tls_failed": "Fix its certificate, or set OPENAI_CA_BUNDLE to the authority that signed it.",
    "upstream_timeout": "Check {url}, and the server's load.",
    "upstream_unavailable": "It is down or temporarily unavailable: check {url}, and that the server is up.",
}


def checked_failure(failure: UpstreamError, where: str, server: UpstreamServer) -> str:
    """A failed check in an operator's words: the server, the setting that points at it, what
    went wrong, and what to look at."""
    advice = _CHECK_ADVICE.get(failure.error_code, "Check {url}.")
    said = advice.format(url=server.url_setting, key=server.key_setting)
    return f"{where} (set by {server.url_setting}): {failure.detail} {said}"


def transport_error(exc: httpx.TransportError, host: str) -> UpstreamError:
    """Classify a failure to connect or to read the head of the answer."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError("upstream_timeout", "The model provider did not answer in time.")
    problem = tls_problem(exc)
    if problem is not None:
        detail = f"The model server's TLS certificate was refused: {problem}."  # its host: the log's, not a client's
        return UpstreamError("upstream_tls_failed", detail, log_fields={"upstream_host": host})
    if isinstance(exc, MalformedResponse):
        return UpstreamError("upstream_bad_response", "The model provider's answer is not valid HTTP/1.1.")
    return UpstreamError("upstream_unavailable", "Could not connect to the model provider.")


def tls_problem(exc: BaseException) -> str | None:
    """What certificate verification refused, if that is what `exc` (or what caused it) is."""
    chain = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            return link.verify_message or "certificate verify failed"
    if any("CERTIFICATE_VERIFY_FAILED" in str(link) for link in chain):
        return "certificate verify failed"
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The delay asked for by a delay header (seconds, milliseconds or an HTTP date), if any."""
    for name, scale in _RETRY_AFTER_HEADERS:
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
