"""How a generation ended, in any mode: what wait mode answers, a stream's terminal event says,
and a stream keeps beside its events (`record`) for the objects built from it later."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import CATALOGUE, ApiError
from ..providers.base import Usage
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

    def usage_and_cost(self) -> dict[str, Any]:
        """Its `usage` object, with `cost_usd` where its model has a price."""
        found: dict[str, Any] = self.usage.as_dict()
        if self.cost_usd is not None:
            found["cost_usd"] = self.cost_usd
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
            ],
            "chunks": self.chunks,
            "duration_ms": self.duration_ms,
            "ttft_ms": self.ttft_ms,
            "error": None if error is None else _error_record(error),
            "model": self.model,
            "stop_sequence": self.stop_sequence,
            "cost_usd": self.cost_usd,
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
        generated, cached, written = (*more, *(None, 0, 0)[len(more) :])[:3]
        usage = Usage(int(prompt), int(completion), bool(estimated), generated, int(cached), int(written))
        duration, ttft = record["duration_ms"], record["ttft_ms"]
        model, stop, cost = record.get("model"), record.get("stop_sequence"), record.get("cost_usd")
        ending = record["finish_reason"]
        return cls(text, record["chunks"], usage, duration, ttft, ending, error, parts, model, stop, cost)


def _error_record(error: ApiError) -> dict[str, Any]:
    record: dict[str, Any] = {"code": error.error_code, "detail": error.detail}
    if error.action != error.kind.action:
        record["action"] = error.action
    if error.retry_after is not None and error.retry_after != error.kind.retry_after:
        record["retry_after"] = error.retry_after
    return record
