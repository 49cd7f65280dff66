"""How a generation ended, in any mode: what wait mode answers, a stream's terminal event says,
and a stream keeps beside its events (`record`) for the objects built from it later."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import CATALOGUE, ApiError
from ..providers.call import Usage
from ..providers.deltas import ReplyParts


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a generation ended: exactly one of `finish_reason` and `error` is set. `parts`: what
    its typed deltas add up to (reasoning, refusal, tool calls), where its family carries them."""

    text: str
    chunks: int
    usage: Usage
    duration_ms: float
    ttft_ms: float | None
    finish_reason: str | None = None
    error: ApiError | None = None
    parts: ReplyParts | None = None
    model: str | None = None  # the fallback model that answered (None: the one asked for)
    stop_sequence: str | None = None  # the stop sequence that ended it, where the upstream said which
    cost_usd: float | None = None  # what it cost, where its model has a price (`cost`)
    attempts: tuple[dict[str, Any], ...] = ()  # its upstream attempts (`attempts.Entry.as_dict`)
    # chunks that reached clients (None: all of them, as whoever reads a terminal event has them)
    # and chunks resumes sent again (None: not known here, as in a terminal event; shown above 0)
    delivered: int | None = None
    replayed: int | None = None

    def usage_and_cost(self) -> dict[str, Any]:
        """Its `usage` object with its ledger's fields (the native API's)."""
        return {**self.usage.as_dict(), **self.ledger()}

    def ledger(self) -> dict[str, Any]:
        """What its attempts generated, what reached clients (and what resumes sent again, where
        known and any), what the upstreams read again, what it cost (where its model has a
        price), and its attempts: the `chatwait` extension of the OpenAI and Anthropic usages."""
        usage, attempts = self.usage, self.attempts
        generated = usage.completion_tokens if usage.generated is None else usage.generated
        if attempts:  # each by its upstream's count where it gave one
            generated = sum(attempt["output_tokens"] for attempt in attempts)
        found: dict[str, Any] = {"generated_tokens": generated}
        found["delivered_tokens"] = self.chunks if self.delivered is None else self.delivered
        if self.replayed:
            found["replayed_tokens"] = self.replayed
        answered = [attempt for attempt in attempts if attempt["outcome"] != "failed"]
        resent = sum(attempt["input_tokens"] for attempt in answered[1:]) if answered else usage.resent
        if resent:
            found["resent_tokens"] = resent
        if self.cost_usd is not None:
            found["cost_usd"] = self.cost_usd
        found["attempts"] = list(self.attempts)
        return found

    def record(self) -> dict[str, Any]:
        """How it ended, as a stream keeps it beside its events (JSON-ready; the text is the
        stream's own chunks, so it is left out)."""
        usage = self.usage
        error = self.error
        return {
            "finish_reason": self.finish_reason,
            "usage": [
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.estimated,
                usage.generated,
                usage.cached_tokens,
                usage.cache_write_tokens,
                usage.resent,
                usage.cache_write_long_tokens,
                usage.reasoning_tokens,
            ],
            "chunks": self.chunks,
            "duration_ms": self.duration_ms,
            "ttft_ms": self.ttft_ms,
            "error": None if error is None else _error_record(error),
            "model": self.model,
            "stop_sequence": self.stop_sequence,
            "cost_usd": self.cost_usd,
            "attempts": list(self.attempts),
        }

    @classmethod
    def from_record(cls, text: str, record: dict[str, Any], parts: ReplyParts | None = None) -> Outcome:
        """The outcome a `record` keeps, with the stream's `text` and `parts`."""
        prompt, completion, estimated, *more = record["usage"]  # fewer: a record of an older release
        found = record.get("error")
        error = None
        if found is not None:
            kind = found["code"] if found["code"] in CATALOGUE else "internal_error"
            error = ApiError(
                kind, found.get("detail"), action=found.get("action"), retry_after=found.get("retry_after")
            )
        generated, cached, written, resent, long, reasoning = (*more, *(None, 0, 0, 0, 0, 0)[len(more) :])[:6]
        usage = Usage(
            int(prompt),
            int(completion),
            bool(estimated),
            generated,
            int(cached),
            int(written),
            int(resent),
            int(long),
            int(reasoning),
        )
        duration, ttft = record["duration_ms"], record["ttft_ms"]
        model, stop, cost = record.get("model"), record.get("stop_sequence"), record.get("cost_usd")
        ending, attempts = record["finish_reason"], tuple(record.get("attempts") or ())
        return cls(text, record["chunks"], usage, duration, ttft, ending, error, parts, model, stop, cost, attempts)


def _error_record(error: ApiError) -> dict[str, Any]:
    record: dict[str, Any] = {"code": error.error_code, "detail": error.detail}
    if error.action != error.kind.action:
        record["action"] = error.action
    if error.retry_after is not None and error.retry_after != error.kind.retry_after:
        record["retry_after"] = error.retry_after
    return record
