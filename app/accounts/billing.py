"""Where what payers are charged goes, one per app (`Billing`): their tickets settle in the key
limits, what they spent joins the spend tally, each model at its price; and the delivery charge of
a payer who pays for the output that reaches its clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..config.prices import Price
from .payer import Payer
from .ticket import Ticket

Prices = Callable[[str], Price | None]  # a model's price (`Settings.price_of`)
Charge = Callable[[str, int], None]  # a model's output tokens that reached a client for the first time


class KeyLimits(Protocol):
    """Where a payer's tickets settle and its delivery is charged (`limits.Limits`)."""

    def end(self, ticket: Ticket, completion_tokens: int, cost_usd: float | None = None) -> None: ...

    def hand_over(self, ticket: Ticket) -> None: ...

    def charge(self, payer: Payer, cost_usd: float) -> None: ...


class Spending(Protocol):
    """Where what a payer is charged is summed by model and day (`spend.tally`)."""

    def add(self, payer: Payer, model: str, usd: float | None, tokens: tuple[int, int], requests: int = 1) -> None: ...


def _no_prices(_model: str) -> Price | None:
    return None


class Billing:
    """The key limits, the models' prices and the spend tally (None: no spend report), as every
    account settles into them."""

    __slots__ = ("limits", "prices", "spending")

    def __init__(self, limits: KeyLimits | None = None, prices: Prices = _no_prices, spending: Spending | None = None):
        self.limits, self.prices, self.spending = limits, prices, spending

    def delivery(self, payer: Payer) -> Charge | None:
        """How `payer` is charged for chunks of a model's output that reach its client for the first
        time, where it pays for delivery (None: it pays for what is generated, or nothing counts it)."""
        limits, spending, prices = self.limits, self.spending, self.prices
        if not payer.pays_delivered or limits is None or not (payer.limited or spending is not None):
            return None

        def charge(model: str, chunks: int) -> None:
            price = prices(model)
            if price is None:
                return
            usd = price.cost(0, 0, chunks)
            limits.charge(payer, usd)
            if spending is not None:
                spending.add(payer, model, usd, (0, chunks), requests=0)

        return charge


UNBILLED = Billing()  # nothing counts it: no limits, no prices, no spend report
