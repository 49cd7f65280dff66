"""A key's Responses WebSockets counted against its max_sockets while they are open (their leases
renewed with the generations'), or refused when the key is at it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..accounts.payer import Payer
from ..accounts.ticket import Ticket
from ..config import ClientKey
from ..errors import ApiError
from ..metrics.catalogue import Metrics, NoMetrics
from . import refusals
from .counters import STREAMS_RETRY_SECONDS, Counters, CountersUnavailable, Verdict

log = logging.getLogger("chatwait.limits")


class Sockets:
    """The WebSockets this worker holds open, by their tickets."""

    def __init__(self, counters: Counters, metrics: Metrics | NoMetrics, unreached: Callable[[Ticket], Ticket]) -> None:
        self.counters, self.metrics, self._unreached = counters, metrics, unreached
        self._open: dict[str, Ticket] = {}

    def hold(self, key: ClientKey) -> Ticket | None:
        """A new socket's ticket, None where nothing counts it (no max_sockets, or counters out of
        reach with KEY_LIMITS_WITHOUT_REDIS=open). ApiError when the key is at its max_sockets."""
        if key.max_sockets is None:
            return None
        ticket = Ticket(Payer(key))
        try:
            held = self.counters.hold(key, ticket.id)
        except CountersUnavailable:
            self._unreached(ticket)
            return None
        if not held:
            self.metrics.key_refused(key.name, "max_sockets")
            detail = refusals.detail(ticket.payer, Verdict(refused="max_sockets"))
            detail += " Close one of them, or send turns on one."
            raise ApiError("rate_limited", detail, retry_after=STREAMS_RETRY_SECONDS)
        self._open[ticket.id] = ticket
        return ticket

    def let_go(self, ticket: Ticket | None) -> None:
        """A socket `hold` counted closed (once)."""
        if ticket is None or self._open.pop(ticket.id, None) is None:
            return
        try:
            self.counters.let_go(ticket.key, ticket.id)
        except CountersUnavailable:
            log.warning("limits_unreached", extra={"client_name": ticket.key.name, "operation": "close_socket"})

    def held(self) -> list[Ticket]:
        """The sockets held open now (their leases to renew)."""
        return list(self._open.values())
