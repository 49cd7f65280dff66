"""A stream taken over from a worker that died (`Takeover.adopt`): its generation continued here
from the text its clients have, its account built again, whole, from what the stream kept (its
call, its payer, its payer's ticket) before its producer starts, and closed here."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..accounts import reserving
from ..accounts.account import Account, Origin
from ..accounts.billing import Billing
from ..accounts.payer import NOBODY
from ..config import Settings
from ..generation import continuation
from ..limits import Limits
from ..metrics.catalogue import Metrics, NoMetrics
from ..providers.base import Provider
from ..providers.call import ChatCall, Route
from ..providers.deltas import ReplyParts
from ..streaming import producer, revival
from ..streaming.stream import Stream
from .keys import ClientKeys
from .settling import closed_with


@dataclasses.dataclass(frozen=True)
class Takeover:
    """What continuing another worker's stream uses: the settings, the provider, the client keys
    and their limits, the billing, the metrics, and what rebuilds a stream's `Retention.ended` by
    wire (`Family.reviver`)."""

    settings: Settings
    provider: Provider
    client_keys: ClientKeys
    limits: Limits
    billing: Billing
    metrics: Metrics | NoMetrics
    revivers: dict[str, Any]

    def adopt(self, stream: Stream, record: dict[str, Any]) -> bool:
        """Continue `stream` here (`record`: its call, as `revival` keeps it); False when it cannot
        be continued (a tool call or a refusal cut, reasoning without text, no server that continues)."""
        call, prompt_tokens = revival.call_of(record)
        if not self._continuable(stream, call):
            return False
        args = stream.retention.ended_args
        revive = self.revivers.get(stream.wire_name)
        if args is not None and revive is not None:
            stream.retention = dataclasses.replace(stream.retention, ended=revive(stream.client, args))
        account = self._account(stream, call, prompt_tokens, record.get("ticket"))
        producer.start(stream, self.provider, self.settings, account, self.metrics)
        if account.settles:
            closed_with(account, stream)
        return True

    def _continuable(self, stream: Stream, call: ChatCall) -> bool:
        """Whether the reply its clients have can be continued (none yet: it starts again)."""
        if not stream.chunks:
            return True
        text, _, parts = stream.result() or ("", None, ReplyParts())
        if not continuation.continuable(text, parts):
            return False
        return self.provider.continuation(call.model, Route()) in continuation.STRATEGIES

    def _account(self, stream: Stream, call: ChatCall, prompt_tokens: int | None, held: Any) -> Account:
        """Its account as it was made at admission: its payer (as its key and end user are now)
        and, where its payer's limits counted it, its ticket, which keeps its place and its
        reservations and is settled here."""
        payer, ticket = NOBODY, None
        if isinstance(held, dict):
            payer = self.client_keys.revived(held)
            if payer.limited and "id" in held:
                ticket = self.limits.resume(payer, held, reserving.dearest(self.settings, call))
        origin = Origin(stream.correlation_id, stream.stream_id)
        return Account(call, prompt_tokens, origin, Route(), payer, ticket, None, self.billing)
