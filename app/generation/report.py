"""What a generation tells when it fails upstream or ends: the log lines and the metrics.

Two INFO lines per request (DESIGN §7): a generation whose starting request is still open hands
its completion fields to that request's request_completed line (`Handoff`) and logs its own
line at DEBUG; one that outlives its request (the client left, background mode, a takeover)
logs it at INFO. A failure keeps its WARNING line either way."""

from __future__ import annotations

import logging
from typing import Any

from ..accounts.account import Handoff
from ..accounts.cost import replayed
from ..errors import ApiError
from ..metrics.catalogue import Metrics
from ..providers.base import UpstreamError
from . import backoff
from .outcome import Outcome

log = logging.getLogger("chatwait.relay")


def upstream_failure(failure: UpstreamError, metrics: Metrics, retries: int, extra: dict[str, Any]) -> ApiError:
    """The client's error for a generation the upstream failed (with when to try again, where
    the upstream did not say: what the next retry would wait), logged with `extra`."""
    metrics.upstream_error(failure.error_code)
    retry_after = failure.retry_after
    if retry_after is None and failure.error_code in ("upstream_rate_limited", "upstream_unavailable"):
        retry_after = backoff.ceiling(retries + 1)
    error = ApiError(failure.error_code, failure.detail, retry_after=retry_after)
    log.warning(
        "error_occurred",
        extra={
            "error_code": failure.error_code,
            "error_type": "UpstreamError",
            "error_message": error.kind.message,
            "detail": failure.detail,
            "action": error.operator_action,
            "upstream_status": failure.upstream_status,
            "upstream_request_id": failure.upstream_request_id,
            **extra,
            **failure.log_fields,
        },
    )
    return error


def ended(
    outcome: Outcome, metrics: Metrics, source: tuple[str, str], fields: dict[str, Any], handoff: Handoff | None
) -> None:
    """A generation's completion line (stream_completed, stream_cancelled or stream_failed) with
    `fields`, and its metrics; `source` is the model that answered and the provider's name."""
    usage = outcome.usage
    fields = {
        "duration_ms": outcome.duration_ms,
        "ttft_ms": outcome.ttft_ms,
        "chunks": outcome.chunks,
        **outcome.usage_and_cost(),
        "attempts": len(outcome.attempts),  # each is in the trace (and the stream's objects)
        "usage_source": usage.source,
        **fields,
    }
    failed = outcome.error is not None
    ending = outcome.error.error_code if outcome.error is not None else str(outcome.finish_reason)
    carried = handoff is not None and handoff.open
    if carried:
        handoff.fields = {("error_code" if failed else "finish_reason"): ending, **fields}  # type: ignore[union-attr]
    if failed:
        log.warning("stream_failed", extra={"error_code": ending, **fields})
    else:
        event = "stream_cancelled" if ending == "cancelled" else "stream_completed"
        log.log(logging.DEBUG if carried else logging.INFO, event, extra={"finish_reason": ending, **fields})
    tokens = (usage.prompt_tokens, usage.completion_tokens, usage.source)
    if replayed(outcome.attempts):  # the response cache answered: no model read or wrote a token
        tokens = (0, 0, usage.source)
    metrics.generation_ended(*source, ending, failed, outcome.duration_ms / 1000, tokens)
    if usage.cached_tokens and tokens[0]:
        metrics.prompt_cached(source[0], usage.cached_tokens)
    metrics.ledger(source[0], fields["generated_tokens"], usage.resent)
    if outcome.cost_usd:
        metrics.cost(source[0], outcome.cost_usd)
