"""A generation's account, made at admission: who asked (its key and its end user), what (its call, fitted to what
its key's limits reserved, and its counted prompt), where it goes first (its route), how it is
traced (its correlation id, its stream's id, the starting request's handoff) and what its key's
counters hold of it (its ticket). The services carry it down to the relay in place of long
parameter lists; it settles itself once, from its generation's outcome, and each client's
delivery is charged through it where the key pays for what reaches its clients."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from ..config import ClientKey
from ..config.keys import EndUser
from ..config.prices import Price
from ..errors import ApiError
from ..providers.call import ChatCall, Route, Usage
from ..traces import Parent
from . import cost
from .ticket import Ticket

Prices = Callable[[str], Price | None]  # a model's price (`Settings.price_of`)


class KeyLimits(Protocol):
    """Where a key's tickets settle (`limits.Limits`)."""

    def end(self, ticket: Ticket, completion_tokens: int, cost_usd: float | None = None) -> None: ...

    def hand_over(self, ticket: Ticket) -> None: ...

    def charge(self, key: ClientKey, cost_usd: float, user: EndUser | None = None) -> None: ...


class Spending(Protocol):
    """Where what a key (and its end user) is charged is summed by model and day (`spend.tally`)."""

    def add(
        self, key: str, user: str | None, model: str, usd: float | None, tokens: tuple[int, int], requests: int = 1
    ) -> None: ...


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


def _no_prices(_model: str) -> Price | None:
    return None


@dataclasses.dataclass(eq=False)
class Account:
    """One generation's account (see the module)."""

    call: ChatCall
    prompt_tokens: int | None  # None: counted from the upstream's usage (or ChatWait's count) at the end
    correlation_id: str = ""
    route: Route = dataclasses.field(default_factory=Route)
    key: ClientKey | None = None
    handoff: Handoff | None = None
    stream_id: str | None = None  # its stream's (None in wait mode)
    prices: Prices = _no_prices
    ticket: Ticket | None = None  # its key's counters' hold, where the key has limits
    limits: KeyLimits | None = None  # where the ticket settles (the key limits)
    end_user: str | None = None  # the application's own id of the person it answers
    spending: Spending | None = None  # where what it is charged is summed for the spend report
    lookup: Any = None  # what the response cache made of it (`response_cache.Lookup`; None: not asked)
    settled: bool = dataclasses.field(default=False, init=False)

    @property
    def limited(self) -> bool:
        """Whether its key's limits counted it (its answer tells where they stand)."""
        return self.ticket is not None

    @property
    def pays_delivered(self) -> bool:
        """Whether its key pays for the output that reaches its clients (else for what is generated)."""
        return self.key is not None and self.key.pays_delivered

    def reserve(self, ticket: Ticket, limits: KeyLimits) -> None:
        """Its key's counters admitted it: it asks for no more than they reserved."""
        self.ticket, self.limits = ticket, limits
        most = ticket.most_tokens(self.call.max_tokens)
        if most != self.call.max_tokens:
            self.call = dataclasses.replace(self.call, max_tokens=most)

    def counting(self, produced: Callable[[], int]) -> None:
        """Its tokens so far, read while it runs (tpm counts them once a second)."""
        if self.ticket is not None:
            self.ticket.progress = produced

    def revival(self) -> dict[str, object] | None:
        """What another worker needs to go on settling it if this one dies: its key and end user,
        and its ticket."""
        if self.key is None:
            return None
        found: dict[str, object] = {"key": self.key.name}
        if self.end_user is not None:
            found["user"] = self.end_user
        return found if self.ticket is None else found | self.ticket.held()

    def cost(self, attempts: tuple[dict[str, Any], ...], usage: Usage, model: str) -> float | None:
        """What its generation cost: its attempts' costs, each at its model's price (a warmup's: its usage's)."""
        return cost.of_attempts(attempts) if attempts else cost.cost(self.prices(model), usage)

    def settle(self, ending: Ending | None, produced: Callable[[], int], model: str, whole: bool) -> None:
        """Its generation ended: its ticket settles, once, with its completion tokens and cost
        (without an outcome, the tokens it `produced`, at its price), and what it was charged
        joins the spend. A key that pays for delivery pays the input and, of a `whole` answer, its
        reply (a stream's output is charged as it reaches a client: `delivery`)."""
        if self.settled or (self.ticket is None and self.spending is None):
            return
        self.settled = True
        if ending is None:
            if self.ticket is not None and self.limits is not None:
                self.limits.end(self.ticket, produced())
            return
        usage, charged = ending.usage, ending.cost_usd
        tokens = (usage.prompt_tokens + usage.resent, usage.charged - usage.resent)
        if cost.replayed(ending.attempts):  # a kept answer played back: no tokens used, no cost
            usage, tokens = dataclasses.replace(usage, completion_tokens=0, generated=None, resent=0), (0, 0)
        elif self.pays_delivered:  # its stream's output joins the spend as it is delivered (`delivery`)
            output = usage.completion_tokens if whole and ending.error is None else 0
            charged = cost.delivered(ending.attempts, usage, self.prices, model, output)
            tokens = (usage.prompt_tokens, output)
        if self.spending is not None:
            self.spending.add("" if self.key is None else self.key.name, self.end_user, model, charged, tokens)
        if self.ticket is not None and self.limits is not None:
            self.limits.end(self.ticket, usage.charged, charged)

    def release(self) -> None:
        """It never started: its ticket's slot and reservations come back."""
        if self.ticket is not None and self.limits is not None and not self.settled:
            self.settled = True
            self.limits.end(self.ticket, 0)

    def hand_over(self) -> None:
        """Another worker took its generation over and settles it: forgotten here."""
        if self.ticket is not None and self.limits is not None and not self.settled:
            self.settled = True
            self.limits.hand_over(self.ticket)


def delivery(
    key: ClientKey | None,
    limits: KeyLimits,
    prices: Prices,
    user: EndUser | None = None,
    spending: Spending | None = None,
    end_user: str | None = None,
) -> Callable[[str, int], None] | None:
    """How `key` (and its end user: `user` where its counters hold one, `end_user` in the spend)
    is charged for chunks of a model's output that reach its client for the first time, where it
    pays for delivery (None: it pays for what is generated, or nothing counts it)."""
    if key is None or not key.pays_delivered or not (key.limited or user is not None or spending is not None):
        return None

    def charge(model: str, chunks: int) -> None:
        price = prices(model)
        if price is None:
            return
        usd = price.cost(0, 0, chunks)
        limits.charge(key, usd, user)
        if spending is not None:
            spending.add(key.name, end_user, model, usd, (0, chunks), requests=0)

    return charge
