"""A generation's account, built whole at admission (`service.admitting`): what was asked (its call,
fitted to what its payer's counters reserved, and its counted prompt), who pays (its payer), where
it goes first (its route), where it comes from (its origin: the request's ids and handoff), what
its payer's counters hold of it (its ticket), what the response cache made of it (its lookup) and
where its money goes (its billing). The services carry it down to the relay in place of long
parameter lists. It has one ending, `close`: it settles from its generation's outcome (or is
released, or handed over), and its lookup finishes; the delivery charge is handed out by it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ..errors import ApiError
from ..providers.base import Provider
from ..providers.call import ChatCall, Route, Usage
from ..traces import Parent
from . import cost
from .billing import UNBILLED, Billing, Charge
from .payer import NOBODY, Payer
from .ticket import Ticket


class Ending(Protocol):
    """What settles an account: its generation's outcome."""

    @property
    def usage(self) -> Usage: ...

    @property
    def cost_usd(self) -> float | None: ...

    @property
    def attempts(self) -> tuple[dict[str, Any], ...]: ...

    @property
    def error(self) -> ApiError | None: ...

    @property
    def model(self) -> str | None: ...


class CacheLookup(Protocol):
    """What the response cache made of a generation (`response_cache.Lookup`)."""

    @property
    def hit(self) -> bool: ...

    def provider(self, real: Provider) -> Provider: ...

    def finish(self) -> None: ...


class Handoff:
    """The completion fields of a generation, for the request that started it while it is open."""

    __slots__ = ("fields", "open", "trace")

    def __init__(self, trace: Parent = None) -> None:
        self.open = True
        self.fields: dict[str, Any] = {}
        self.trace = trace  # the request's span, the parent of the generation's attempts

    def close(self) -> dict[str, Any]:
        """The request ends: the generation's fields (none yet: it will log its own line)."""
        self.open = False
        return self.fields


class Asked(NamedTuple):
    """What a request asks to have generated: its call, and its prompt's tokens as its intake counted
    them (None: counted at admission where a limit needs them, else from the upstream's usage)."""

    call: ChatCall
    prompt_tokens: int | None = None


class Origin(NamedTuple):
    """The request a generation comes from: its correlation id, its stream's id (None: wait mode),
    its handoff (its completion line and its span), and its Cache-Control header (what it asks
    of the response cache)."""

    correlation_id: str = ""
    stream_id: str | None = None
    handoff: Handoff | None = None
    cache_header: str | None = None


NO_ORIGIN = Origin()  # a generation no request started (tests)


class _Once:
    """An account's one ending: the first `close` ends it, later ones do nothing."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended = False

    def first(self) -> bool:
        first, self.ended = not self.ended, True
        return first


@dataclasses.dataclass(eq=False, slots=True)
class Account:
    """One generation's account (see the module): built whole and never assigned to after, which
    tests/unit/test_payers.py holds the code to (a frozen dataclass costs every request its
    construction: docs/performance.md)."""

    call: ChatCall
    prompt_tokens: int | None  # None: counted from the upstream's usage (or ChatWait's count) at the end
    origin: Origin = NO_ORIGIN
    route: Route = dataclasses.field(default_factory=Route)
    payer: Payer = NOBODY
    ticket: Ticket | None = None  # its payer's counters' hold, where they count it
    lookup: CacheLookup | None = None  # what the response cache made of it (None: not asked)
    billing: Billing = UNBILLED
    _once: _Once = dataclasses.field(default_factory=_Once, init=False, repr=False)

    @property
    def limited(self) -> bool:
        """Whether its payer's limits counted it (its answer tells where they stand)."""
        return self.ticket is not None

    @property
    def settles(self) -> bool:
        """Whether its ending does anything: settle a ticket, add to the spend, finish a lookup."""
        return self.ticket is not None or self.billing.spending is not None or self.lookup is not None

    def counting(self, produced: Callable[[], int]) -> None:
        """Its tokens so far, read while it runs (tpm counts them once a second)."""
        if self.ticket is not None:
            self.ticket.progress = produced

    def revival(self) -> dict[str, object] | None:
        """What another worker needs to go on settling it if this one dies: its payer and its ticket."""
        if self.payer.key is None:
            return None
        found = self.payer.record()
        return found if self.ticket is None else found | self.ticket.held()

    def cost(self, attempts: tuple[dict[str, Any], ...], usage: Usage, model: str) -> float | None:
        """What its generation cost: its attempts' costs, each at its model's price (a warmup's: its usage's)."""
        return cost.of_attempts(attempts) if attempts else cost.cost(self.billing.prices(model), usage)

    def delivery(self) -> Charge | None:
        """How its payer is charged for its output as it reaches a client for the first time, where it
        pays for delivery (`Billing.delivery`); a kept answer played back costs nothing delivered."""
        if self.lookup is not None and self.lookup.hit:
            return None
        return self.billing.delivery(self.payer)

    def close(self, ending: Ending | None = None, handed_over: bool = False) -> None:
        """Its one ending (later calls do nothing): settled from its generation's `ending` (None:
        the generation never started, or ended without an outcome: its ticket gives back what it
        did not produce), or (`handed_over`) forgotten here because another worker took it over
        and settles it; then its lookup finishes."""
        if not self._once.first():
            return
        ticket, limits = self.ticket, self.billing.limits
        if handed_over:
            if ticket is not None and limits is not None:
                limits.hand_over(ticket)
        elif ending is None:
            if ticket is not None and limits is not None:
                limits.end(ticket, ticket.progress())
        else:
            self._settle(ending)
        if self.lookup is not None:
            self.lookup.finish()

    def _settle(self, ending: Ending) -> None:
        """Its ticket settles with its completion tokens and cost, and what it was charged joins the
        spend. A payer who pays for delivery pays the input and, of a wait-mode answer, its reply
        (a stream's output is charged as it reaches a client: `delivery`)."""
        billing = self.billing
        if self.ticket is None and billing.spending is None:
            return  # nothing counts it
        usage, charged, model = ending.usage, ending.cost_usd, ending.model or self.call.model
        tokens = (usage.prompt_tokens + usage.resent, usage.charged - usage.resent)
        if cost.replayed(ending.attempts):  # a kept answer played back: no tokens used, no cost
            usage, tokens = dataclasses.replace(usage, completion_tokens=0, generated=None, resent=0), (0, 0)
        elif self.payer.pays_delivered:  # a stream's output joins the spend as it is delivered (`delivery`)
            output = usage.completion_tokens if self.origin.stream_id is None and ending.error is None else 0
            charged = cost.delivered(ending.attempts, usage, self.billing.prices, model, output)
            tokens = (usage.prompt_tokens, output)
        if billing.spending is not None:
            billing.spending.add(self.payer, model, charged, tokens)
        if self.ticket is not None and billing.limits is not None:
            billing.limits.end(self.ticket, usage.charged, charged)
