"""A stream taken over from a worker that died: its generation continued here from the text its
clients have, its account made again from what the stream kept (its call, its key and end user,
the key's ticket), and settled here."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from ..accounts import reserving
from ..accounts.account import Account, Spending
from ..config import Settings
from ..generation import continuation
from ..limits import Limits
from ..metrics.catalogue import Metrics, NoMetrics
from ..providers.base import Provider
from ..providers.call import Route
from ..providers.deltas import ReplyParts
from ..streaming import producer, revival
from ..streaming.stream import Stream
from .keys import ClientKeys
from .settling import settled_with


class Host(Protocol):
    """What a takeover uses of the services."""

    provider: Provider
    settings: Settings
    limits: Limits
    client_keys: ClientKeys
    metrics: Metrics | NoMetrics
    revivers: dict[str, Any]
    spending: Spending | None


def adopt(found: Host, stream: Stream, record: dict[str, Any]) -> bool:
    """Continue `stream` here (`record`: its call, as `revival` keeps it); False when it cannot be
    continued (a tool call or a refusal cut, reasoning without text, no server that continues)."""
    call, prompt_tokens = revival.call_of(record)
    if stream.chunks:
        text, _, parts = stream.result() or ("", None, ReplyParts())
        if not continuation.continuable(text, parts):
            return False
        if found.provider.continuation(call.model, Route()) not in continuation.STRATEGIES:
            return False
    args = stream.retention.ended_args
    revive = found.revivers.get(stream.wire_name)
    if args is not None and revive is not None:
        stream.retention = dataclasses.replace(stream.retention, ended=revive(stream.client, args))
    account = Account(
        call, prompt_tokens, stream.correlation_id, stream_id=stream.stream_id, prices=found.settings.price_of
    )
    account.spending = found.spending
    producer.start(stream, found.provider, found.settings, account, found.metrics)
    held = record.get("ticket")
    if isinstance(held, dict):
        account.key = found.client_keys.named(str(held.get("key")))
        account.end_user = held.get("user") if isinstance(held.get("user"), str) else None
    key = account.key
    if key is not None and key.limited and "id" in held:  # it keeps its key's place and its tokens are charged
        account.reserve(found.limits.resume(key, held, reserving.dearest(found.settings, call)), found.limits)
    if account.limited or account.spending is not None:
        settled_with(account, stream)
    return True
