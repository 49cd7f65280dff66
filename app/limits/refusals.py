"""Why a key's admission is refused, in the words a client gets (rate_limited, budget_exhausted),
and the max_tokens a budget's refusal still leaves room for."""

from __future__ import annotations

from ..accounts import budget
from ..accounts.payer import Payer
from ..errors import ApiError
from .counters import Verdict

WORDS = {
    "max_streams": "generations running at once (max_streams)",
    "rpm": "requests in the last minute (rpm)",
    "tpm": "tokens in the last minute (tpm)",
    "max_sockets": "WebSockets open at once (max_sockets)",
}


def lowered(verdict: Verdict, money: budget.Reservation | None, max_tokens: int, floor: int) -> int:
    """The max_tokens of one answer, without the continuations a generation may take, that a
    budget's refusal leaves room for: `max_tokens` where it fits, else what the tightest budget,
    the key's or its end user's, has left, down to `floor` (0: not even that, or not a budget's
    refusal)."""
    if money is None or not budget.is_budget(verdict.refused):
        return 0
    fits = budget.fitting(money.price, money.prompt, 0, budget.left((*verdict.budgets, *verdict.user_budgets)))
    return min(fits, max_tokens) if fits >= floor else 0


def refusal(payer: Payer, verdict: Verdict, money: budget.Reservation | None = None, floor: int = 1) -> ApiError:
    """The error of a refused admission: rate_limited, or budget_exhausted with what was spent,
    what is left and when it resets (and, where even a whole budget holds no answer of this prompt
    and `floor` tokens, that it never will); it names whose limit it is, the key's or its end
    user's."""
    who = _who(payer, verdict.refused)
    spends = (*verdict.budgets, *verdict.user_budgets)
    spend = next((found for found in spends if found.name == verdict.refused), None)
    if spend is not None:
        if money is not None and budget.fitting(money.price, money.prompt, 0, budget.nano(spend.limit)) < floor:
            return ApiError("budget_exhausted", budget.never(who, spend, money.prompt), retry_after=spend.resets_in)
        least = None if money is None else money.price.cost(money.prompt, 0, floor)
        said = budget.detail(who, spend, least)
        return ApiError("budget_exhausted", said, retry_after=max(1.0, verdict.retry_after))
    return ApiError("rate_limited", detail(payer, verdict), retry_after=max(1.0, verdict.retry_after))


def detail(payer: Payer, verdict: Verdict) -> str:
    """Which limit of `payer`'s refused, as a sentence."""
    limit = verdict.refused or ""
    own = limit.removeprefix("user_")
    holder = payer.user_limits if payer.user_limits is not None and limit.startswith("user_") else payer.key
    allowed = getattr(holder, own, None) if own in WORDS else None
    words = WORDS.get(own, own).replace(f"({own})", f"({limit})")
    who = _who(payer, limit)
    return f"{who[0].upper()}{who[1:]} is at its limit of {allowed} {words}."


def _who(payer: Payer, limit: str | None) -> str:
    """Whose limit `limit` is: the key's, or its end user's."""
    if payer.counted_user is not None and limit is not None and limit.startswith("user_"):
        return f"the end user {payer.counted_user[:80]!r} of the key {payer.name!r}"
    return f"the key {payer.name!r}"
