"""What a stream keeps so that another worker can continue its generation if its own dies: the
call, its counted prompt tokens, its client key's ticket and how the stream is kept (JSON, in
the stream's hash in Redis, while it is live)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..providers.call import ChatCall
from .retention import Retention

# The client's own body (`native`, and `extra` counted from it) is not kept: a continuation is
# sent the translated messages.
_FIELDS = tuple(field.name for field in dataclasses.fields(ChatCall) if field.name not in ("native", "extra"))


def record(
    call: ChatCall, prompt_tokens: int | None, retention: Retention, held: dict[str, object] | None = None
) -> str:
    """The JSON another worker continues the generation of `call` from; `held`: its client key's
    ticket (the worker that continues it holds the key's place and settles its tokens)."""
    kept = {name: getattr(call, name) for name in _FIELDS}
    return json.dumps(
        {
            "call": kept,
            "prompt_tokens": prompt_tokens,
            "kept": retention.finished_seconds,
            "foreground": retention.foreground,
            "stored": retention.stored,
            "ended": retention.ended_args,
            "ticket": held,
        },
        separators=(",", ":"),
    )


def call_of(found: dict[str, Any]) -> tuple[ChatCall, int | None]:
    """The call and its counted prompt tokens, from a `record`."""
    kept = {name: value for name, value in found["call"].items() if name in _FIELDS}
    if kept.get("fallbacks") is not None:
        kept["fallbacks"] = tuple(kept["fallbacks"])
    return ChatCall(**kept), found.get("prompt_tokens")


def retention_of(found: dict[str, Any], context: bytes) -> Retention:
    """How the stream is kept, from a `record` and the context its hash holds (`ended` is its
    family's to rebuild from `ended_args`)."""
    return Retention(
        found.get("kept"),
        context,
        foreground=bool(found.get("foreground")),
        stored=bool(found.get("stored")),
        ended_args=found.get("ended"),
    )
