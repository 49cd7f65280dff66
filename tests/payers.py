"""What the limits' tests say often, over the payer API: a key's payer (or its end user's), and an
admission to the counters or to the limits given as plainly as the tests think of it."""

from __future__ import annotations

from app.accounts.payer import Payer
from app.accounts.reserving import Needs
from app.accounts.ticket import Ticket
from app.config import ClientKey
from app.config.keys import EndUserLimits
from app.config.prices import Price
from app.limits import Limits, Verdict
from app.limits.counters import Counters

Who = ClientKey | Payer


def payer(who: Who) -> Payer:
    """`who` as a payer: a key alone, or a payer as it is."""
    return who if isinstance(who, Payer) else Payer(who)


def end_user(key: ClientKey, user: str, limits: EndUserLimits | None = None) -> Payer:
    """`key`'s end user `user`, held to `limits` (else the key's defaults for its end users)."""
    return Payer(key, user, limits or key.users)


def ticket(who: Who, name: str, reserve: int = 0) -> Ticket:
    """A ticket named `name` of `who`, reserving `reserve` completion tokens."""
    return Ticket(payer(who), reserve, name)


def count(counters: Counters, who: Who, name: str, tokens: int = 0, reserve: int = 0, cost: int = 0) -> Verdict:
    """`counters.admit` of a ticket `name` of `who`, with `tokens` of prompt, `reserve` completion
    tokens and `cost` nano-USD."""
    return counters.admit(ticket(who, name, reserve), tokens, cost)


def admit(
    limits: Limits,
    who: Who,
    prompt: int = 0,
    max_tokens: int = 0,
    price: Price | None = None,
    rescues: int = 0,
    floor: int = 1,
) -> tuple[Ticket, Verdict | None]:
    """`limits.admit` of a generation of `who` with `prompt` tokens asking `max_tokens`, reserved at
    `price` with `rescues` continuations (lowered to fit a budget down to `floor` tokens)."""
    return limits.admit(payer(who), Needs(prompt, max_tokens, price, rescues, floor=floor))
