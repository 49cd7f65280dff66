"""Per-key limits for the views: admit a generation (429 rate_limited when a limit says no),
count its completion tokens while it runs, release it when it ends, and the x-ratelimit-*
headers of an answer.

A key with tpm reserves a generation's whole completion (its max_tokens) at admission, with its
prompt, so that concurrent requests cannot all pass a limit none of them has reached yet: N at
once overshoot it by one reservation at most. Tokens produced beyond the reservation are counted
without any work per token: once a second the counts of the generations running here are read
(their chunks so far) and what is new is added. When a generation ends, its usage settles: what
it reserved and did not produce is taken back. A key with a budget in money reserves the most a
generation can cost (`budget.most_tokens` at the dearest price that may answer) in the same
step, and settles what it did cost (429 budget_exhausted when a budget says no); a key that pays
for delivery is charged its output as it reaches a client (`charge`). With Redis, counters that
cannot be reached admit without counting (KEY_LIMITS_WITHOUT_REDIS=open) or refuse with 503
(closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent

from ..accounts import budget
from ..accounts.payer import Payer
from ..accounts.reserving import Needs
from ..accounts.ticket import Ticket
from ..config import ClientKey
from ..config.prices import Price
from ..errors import ApiError
from ..ids import random_id
from ..metrics.catalogue import Metrics, NoMetrics
from . import refusals, reload
from .counters import Closing, Counters, CountersUnavailable, Settlement, Verdict
from .memory import MemoryCounters
from .outage import Outage
from .owed import Owed
from .sockets import Sockets

log = logging.getLogger("chatwait.limits")

FLUSH_SECONDS = 1.0


class Limits:
    """The limits of every key with limits, over the store's counters."""

    def __init__(
        self, counters: Counters, metrics: Metrics | NoMetrics, fail_open: bool = True, counting: bool = True
    ) -> None:
        self.counters = counters
        self.metrics = metrics
        self.fail_open = fail_open
        self.counting = counting  # whether any key has limits (else nothing counts in the background)
        self._running: dict[str, Ticket] = {}
        self.sockets = Sockets(counters, metrics, self._unreached)
        self._flusher: gevent.Greenlet | None = None
        self.owed = Owed()  # spend settled while the counters were out of reach
        self.outage = Outage()  # budgets as last seen: what open admits while the counters are away
        self._worker = random_id()  # as the counters count the workers that count
        # A reload on the memory store: counters handed over by a draining worker (`reload`).
        self._reload_dir = reload.folder() if isinstance(counters, MemoryCounters) else None
        self._handed: dict[str, Any] | None = None
        # Told where an admission leaves the payer's budgets: the budget alerts (`_watched`).
        self.watch: Callable[[Payer, tuple[budget.Budget, ...], str | None], None] | None = None

    def admit(self, payer: Payer, needs: Needs) -> tuple[Ticket, Verdict | None]:
        """Admit a generation of `payer` (its key, and its end user, held to the key's end-user
        limits too), counting its request, its prompt and (with tpm) its max_tokens as reserved,
        lowered to what tpm has left (the generation asks for no more), and (with a budget) the
        most it can cost, else (`needs.lower`) as many tokens as the budgets have left; its ticket
        and verdict (None: counters out of reach). ApiError when refused."""
        ticket = Ticket(payer, needs.max_tokens if payer.counts_tokens else 0)
        money = needs.money(payer)
        try:
            verdict = self.counters.admit(ticket, needs.prompt_tokens, money.cost if money else 0)
        except CountersUnavailable:
            return self._admitted_unreached(ticket, money, needs.prompt_tokens), None
        if verdict.budgets or verdict.user_budgets:
            self.outage.saw(payer, verdict)
        if verdict.refused is not None:
            lowered = refusals.lowered(verdict, money, needs.max_tokens, needs.floor) if needs.lower else 0
            if lowered:  # what the budgets have left: one answer that fits in them
                ticket, verdict = self.admit(payer, needs._replace(max_tokens=lowered, rescues=0, lower=False))
                if lowered < needs.max_tokens:
                    ticket.max_tokens = lowered
                return ticket, verdict
            self._watched(payer, verdict)
            self.metrics.key_refused(payer.name, verdict.refused)
            raise refusals.refusal(payer, verdict, money, needs.floor)
        self._watched(payer, verdict)
        return self._admitted(ticket, money, verdict, needs.prompt_tokens), verdict

    def _admitted(self, ticket: Ticket, money: budget.Reservation | None, verdict: Verdict, prompt: int) -> Ticket:
        """An admitted generation's ticket, as the counters took it, running here."""
        ticket.second = verdict.second
        if money is not None:
            money.periods, ticket.money = verdict.periods, money
        ticket.reserved = ticket.counted = verdict.reserved  # lowered to what tpm has left
        self._running[ticket.id] = ticket
        self.metrics.key_generation(ticket.key.name, 1, prompt)
        return ticket

    def _watched(self, payer: Payer, verdict: Verdict) -> None:
        """Tell the watch (the budget alerts) where the budgets stood as a budgeted admission came
        (what is spent apart from what running generations reserve)."""
        if self.watch is not None and (verdict.budgets or verdict.user_budgets):
            self.watch(payer, (*verdict.budgets, *verdict.user_budgets), verdict.refused)

    def _admitted_unreached(self, ticket: Ticket, money: budget.Reservation | None, prompt_tokens: int) -> Ticket:
        """A generation admitted while the counters are out of reach (KEY_LIMITS_WITHOUT_REDIS=open):
        counted nowhere (or, Redis slow, maybe later), it settles as unsure when it ends."""
        ticket.counted = 0
        self._unreached(ticket)
        if money is not None and not self.outage.allows(ticket.payer, money.cost):
            detail = (
                "The client key limits live in Redis, which is out of reach, and this worker has admitted its share "
                "of what the budget had left when Redis last answered (KEY_LIMITS_WITHOUT_REDIS=open)."
            )
            raise ApiError("store_unavailable", detail)
        if money is not None:
            at = budget.periods(time.time())
            money.periods, money.unsure, ticket.money = (at.day, at.month), True, money
        self._running[ticket.id] = ticket  # settled when it ends: now, or once the counters answer
        self.metrics.key_generation(ticket.key.name, 1, prompt_tokens)
        return ticket

    def request(self, key: ClientKey) -> Verdict | None:
        """Count a request of `key` that starts no generation (a conversation's change, a token
        count) against its rpm: ApiError(rate_limited) when the key is at it; None when the
        counters are out of reach (counted nowhere, or refused: KEY_LIMITS_WITHOUT_REDIS)."""
        try:
            verdict = self.counters.request(key)
        except CountersUnavailable:
            self._unreached(Ticket(Payer(key)))
            return None
        if verdict.refused is not None:
            self.metrics.key_refused(key.name, verdict.refused)
            raise refusals.refusal(Payer(key), verdict)
        return verdict

    def open_socket(self, key: ClientKey) -> Ticket | None:
        """Count a Responses WebSocket of `key` against its max_sockets while it is open (`sockets`)."""
        return self.sockets.hold(key)

    def close_socket(self, ticket: Ticket | None) -> None:
        """A WebSocket `open_socket` counted closed."""
        self.sockets.let_go(ticket)

    def look(self, key: ClientKey) -> Verdict | None:
        """Where `key`'s limits stand (None: counters out of reach)."""
        try:
            return self.counters.peek(key)
        except CountersUnavailable:
            return None

    def end(self, ticket: Ticket, completion_tokens: int, cost_usd: float | None = None) -> None:
        """A generation ended with `completion_tokens` and (where its model has a price)
        `cost_usd`: count what was not counted yet, take back what was reserved and not
        produced or not spent, and release its slot (one call to the counters)."""
        if self._running.pop(ticket.id, None) is None:
            return
        self.metrics.key_generation(ticket.key.name, -1, 0)
        self._report(ticket, completion_tokens)
        spent = max(0, completion_tokens - ticket.counted)
        refund = min(ticket.reserved, max(0, ticket.counted - completion_tokens))
        money, settle = ticket.money, None
        if money is not None:
            cost = money.spent(completion_tokens, cost_usd)
            self.metrics.key_spend(ticket.key.name, cost / budget.NANO)
            settle = Settlement(cost, money.cost, money.periods, money.unsure)
        elif cost_usd:
            self.metrics.key_spend(ticket.key.name, cost_usd)
        closing = Closing(ticket.payer, ticket.id, spent, refund, ticket.second, settle)
        try:
            self.counters.release(closing)
        except CountersUnavailable:
            log.warning("limits_unreached", extra={"client_name": ticket.key.name, "operation": "release"})
            if settle is not None:
                self.owed.add(closing)

    def charge(self, payer: Payer, cost_usd: float) -> None:
        """Charge a payer who pays for delivery `cost_usd` for output that reached its client, to
        its budgets now (what its generations settle leaves that output out)."""
        key = payer.key
        if cost_usd <= 0 or key is None or not payer.limited:
            return
        self.metrics.key_spend(key.name, cost_usd)
        if payer.user_limits is not None and not payer.user_limits.budgeted:
            payer = Payer(key)  # its end user has no budget to charge
        if not payer.budgeted:
            return
        try:
            self.counters.charge(payer, budget.nano(cost_usd))
        except CountersUnavailable:
            log.warning("limits_unreached", extra={"client_name": key.name, "operation": "charge"})
            at = budget.periods(time.time())
            self.owed.add(Closing(payer, random_id(), settle=Settlement(budget.nano(cost_usd), 0, (at.day, at.month))))

    def resume(self, payer: Payer, held: dict[str, Any], price: Price | None = None) -> Ticket:
        """A generation taken over from a worker that died keeps its place among its key's
        (max_streams) and its reservations (tokens, money): its ticket (`held`) is renewed and
        settled here."""
        ticket = Ticket(payer, int(held.get("reserved") or 0), str(held["id"]))
        ticket.second = int(held.get("second") or 0)
        if price is not None and payer.budgeted:
            ticket.money = budget.Reservation.taken_over(held, price)
        self._running[ticket.id] = ticket
        self.metrics.key_generation(payer.name, 1, 0)
        try:
            self.counters.take_over(ticket)
        except CountersUnavailable:
            log.warning("limits_unreached", extra={"client_name": payer.name, "operation": "resume"})
        return ticket

    def hand_over(self, ticket: Ticket) -> None:
        """Another worker took the generation over and settles its ticket: forget it here."""
        if self._running.pop(ticket.id, None) is not None:
            self.metrics.key_generation(ticket.key.name, -1, 0)

    def start(self) -> None:
        """Count running generations' tokens (and renew their leases) every FLUSH_SECONDS, where
        any key has limits."""
        if self.counting:
            self._flusher = gevent.spawn(self._flush_forever)

    def stop_accepting(self) -> None:
        """The worker drains: hand the counters to the workers that follow (a reload, the memory store)."""
        if self._reload_dir is not None and self._handed is None:
            self._handed = reload.hand_over(self._reload_dir, self.counters, None)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
        if self._reload_dir is not None and self._handed is not None:  # what settled since the drain began
            reload.hand_over(self._reload_dir, self.counters, self._handed)  # type: ignore[arg-type]
        self.counters.close()

    def check(self, shared: bool) -> dict[str, object]:
        """/ready's word on the limits: where they are counted, and what happens without Redis."""
        if not shared:
            return {"ok": True, "detail": "Counted in each worker's memory: every worker enforces its own limits."}
        if self.counters.reachable():
            return {"ok": True, "detail": "Counted in Redis: shared by every worker and instance."}
        if self.fail_open:
            detail = "Redis is out of reach: limits go unenforced until it answers (KEY_LIMITS_WITHOUT_REDIS=open)."
            return {"ok": True, "detail": detail}
        detail = "Redis is out of reach: keys with limits get 503 until it answers (KEY_LIMITS_WITHOUT_REDIS=closed)."
        return {"ok": False, "detail": detail}

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_SECONDS)
            running = list(self._running.values())
            try:
                self._spend([(ticket, ticket.progress()) for ticket in running])
                self.counters.renew(running)
                self.counters.renew(self.sockets.held(), sockets=True)
                self.outage.workers = self.counters.workers(self._worker)
                if self.owed:
                    self.owed.pay(self.counters)
                if self._reload_dir is not None and self._handed is None:
                    reload.take(self._reload_dir, self.counters)  # type: ignore[arg-type]
            except CountersUnavailable:
                log.warning("limits_unreached", extra={"operation": "flush", "generations": len(running)})

    def _spend(self, produced: list[tuple[Ticket, int]]) -> None:
        """Count the running generations' tokens produced beyond what is counted (their reservation)."""
        spent = []
        for ticket, total in produced:
            self._report(ticket, total)
            if total > ticket.counted:
                spent.append((ticket.payer, total - ticket.counted))
                ticket.counted = total
        if spent:
            self.counters.spend(spent)

    def _report(self, ticket: Ticket, total: int) -> None:
        """The metrics count every token produced as it comes, reserved or not."""
        if total > ticket.reported:
            self.metrics.key_tokens_out(ticket.key.name, total - ticket.reported)
            ticket.reported = total

    def _unreached(self, ticket: Ticket) -> Ticket:
        log.warning("limits_unreached", extra={"client_name": ticket.key.name, "operation": "admit"})
        if not self.fail_open:
            detail = "The client key limits live in Redis, which is out of reach (KEY_LIMITS_WITHOUT_REDIS=closed)."
            raise ApiError("store_unavailable", detail)
        return ticket
