"""What a key's limits allow now: the verdict of an admission or a look, a settlement, and what
every store of counters does (`memory`: one worker's; `shared`: Redis's, for every worker and
instance). A payer's end user, where the key holds them to limits of their own, is counted beside
the key, in the same step."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Protocol

from ..accounts import budget
from ..accounts.payer import Payer
from ..accounts.ticket import Ticket
from ..config import ClientKey

STREAMS_RETRY_SECONDS = 1.0  # nobody knows when a stream ends: a client at max_streams tries again soon


class CountersUnavailable(Exception):
    """The counters could not be reached (Redis out of reach)."""


@dataclasses.dataclass(frozen=True)
class Settlement:
    """What a generation's reservation settles to: what it cost and what it reserved (nano-USD),
    in the day and month it was reserved in."""

    cost: int
    reserved: int
    periods: tuple[str, str]
    unsure: bool = False  # admitted while the counters were out of reach: `reserved` only if they took it

    def change(self, before: int | None) -> tuple[int, int]:
        """The spend's change, and what the ticket has settled after it, when a ticket taken over
        had settled `before` (None or below 0: not yet). A stalled owner and the worker that took
        its generation over may both end it: the reservation comes back once, and the spend
        keeps the dearest of their costs (the taker's ledger holds the owner's attempt)."""
        if before is None or before < 0:
            return self.cost - self.reserved, self.cost
        return max(0, self.cost - before), max(before, self.cost)


@dataclasses.dataclass(frozen=True)
class Closing:
    """What a generation's end tells its key's counters: it no longer counts against max_streams;
    `spent` tokens it produced beyond what was counted count now, and `refund` tokens of its
    reservation come off the second it was admitted in (`Verdict.second`), if that is still
    counted. `settle`: what it cost and reserved, in the periods it was reserved in
    (`Verdict.periods`), where those are still counted."""

    payer: Payer  # its key's counters (and its end user's) hold it
    ticket: str
    spent: int = 0
    refund: int = 0
    second: int = 0
    settle: Settlement | None = None


@dataclasses.dataclass(frozen=True)
class Quota:
    """A per-minute limit as the x-ratelimit-* headers tell it."""

    limit: int
    remaining: int
    reset: float  # seconds until the oldest count leaves the minute


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether a key may start a generation now, and where its limits stand."""

    # The limit that refuses: max_streams, rpm, tpm, budget_day or budget_month; an end user's:
    # user_max_streams, user_rpm, user_tpm, user_budget_day or user_budget_month.
    refused: str | None = None
    retry_after: float = 0.0
    requests: Quota | None = None
    tokens: Quota | None = None
    streams: tuple[int, int] | None = None  # (max_streams, live generations)
    second: int = 0  # the second of the minute an admission's tokens were counted in (for `release`)
    reserved: int = 0  # an admission's completion tokens reserved (lowered to what its tpm has left)
    budgets: tuple[budget.Budget, ...] = ()  # where the key's budgets in money stand
    user_budgets: tuple[budget.Budget, ...] = ()  # where its end user's stand
    periods: tuple[str, str] = ("", "")  # the day and month an admission's cost was reserved in


class Counters(Protocol):
    """Where a key's counts live: this worker's memory, or Redis."""

    def admit(self, ticket: Ticket, tokens: int, cost: int = 0) -> Verdict:
        """Admit a generation `ticket` of its payer (its key, and its end user where their limits
        hold too) and count it with `tokens` (its prompt) and what is reserved for its completion
        (`ticket.reserved`, lowered to what the key's and the end user's tpm have left: at least
        one token must be) and for its cost (`cost`, nano-USD, against their budgets), or refuse
        it without counting."""
        ...

    def peek(self, key: ClientKey) -> Verdict:
        """Where `key`'s limits stand (nothing counted)."""
        ...

    def request(self, key: ClientKey) -> Verdict:
        """Count a request of `key` that starts no generation (a conversation's change, a token
        count) against its rpm, or refuse it without counting."""
        ...

    def spend(self, spent: Iterable[tuple[Payer, int]]) -> None:
        """Count completion tokens produced since the last call, per payer."""
        ...

    def release(self, closing: Closing) -> None:
        """A generation ended (`Closing`). A ticket taken over gives its reservation back once
        (`Settlement.change`)."""
        ...

    def charge(self, payer: Payer, cost: int) -> None:
        """Add `cost` (nano-USD) to `payer`'s spend of this day and month: output that reached a
        client of a key that pays for delivery."""
        ...

    def take_over(self, ticket: Ticket) -> None:
        """A generation `ticket` of a worker that stopped answering goes on here: its lease is
        renewed, and its settlements from now on are remembered so that its reservation comes
        back once, should its first worker still end it too."""
        ...

    def renew(self, tickets: Iterable[Ticket], sockets: bool = False) -> None:
        """The generations still running here, or with `sockets` the WebSockets still open
        (Redis: their leases)."""
        ...

    def hold(self, key: ClientKey, ticket: str) -> bool:
        """Count a WebSocket `ticket` of `key` as open, unless it has max_sockets open already
        (False, nothing counted)."""
        ...

    def let_go(self, key: ClientKey, ticket: str) -> None:
        """A WebSocket of `key` closed: it no longer counts against max_sockets."""
        ...

    def workers(self, worker: str) -> int:
        """Count `worker` as counting now; how many workers have counted here lately (one, in a
        worker's memory)."""
        ...

    def reachable(self) -> bool:
        """Whether the counters answer now."""
        ...

    def close(self) -> None:
        """Let go of what holds the counters."""
        ...
