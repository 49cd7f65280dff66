"""What a generation reserves: what its admission asks its payer's counters for (`Needs`), beyond
its counted prompt the price of the dearest model that may answer it, and what its images and
files are billed as by those models' published rules (`providers.surcharge`)."""

from __future__ import annotations

from typing import NamedTuple

from ..config import Settings
from ..config.prices import Price
from ..providers.call import ChatCall
from ..providers.surcharge import surcharge as attachments
from .budget import Reservation
from .payer import Payer


def answering(settings: Settings, call: ChatCall) -> tuple[str, ...]:
    """The models that may answer `call`: its own, and its fallbacks."""
    fallbacks = call.fallbacks if call.fallbacks is not None else settings.fallbacks_of(call.model)
    return (call.model, *fallbacks)


def dearest(settings: Settings, call: ChatCall) -> Price | None:
    """What a budget reserves `call` at: the dearest input and output rates of the models that
    may answer it (its own, and its fallbacks), every input token at its dearest rate (a cache
    write can cost more than plain input). None: none of them has a price."""
    prices = [price.reserved() for model in answering(settings, call) if (price := settings.price_of(model))]
    if not prices:
        return None
    return Price(max(price.input for price in prices), max(price.output for price in prices))


def surcharge(settings: Settings, call: ChatCall) -> int:
    """The tokens `call`'s images and files are billed as beyond the input count's estimate, by
    the model that may answer that bills them most."""
    return attachments(answering(settings, call), call.messages)


class Needs(NamedTuple):
    """What an admission asks its payer's counters to reserve: the prompt's tokens and the
    completion's (max_tokens, lowered to what tpm has left); with a budget, the money the most it
    can cost takes at `price` with `rescues` continuations (else, `lower`: that one answer without
    them, then as many tokens as the budgets have left, not fewer than `floor`)."""

    prompt_tokens: int
    max_tokens: int = 0
    price: Price | None = None
    rescues: int = 0
    lower: bool = True
    floor: int = 1

    def money(self, payer: Payer) -> Reservation | None:
        """Its reservation in money, where `payer` has a budget and a price is known (None: none)."""
        if self.price is None or not payer.budgeted:
            return None
        return Reservation.of(self.price, self.prompt_tokens, self.max_tokens, self.rescues)
