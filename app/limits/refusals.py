"""Why a key's admission is refused, in the words a client gets (rate_limited, budget_exhausted),
and the max_tokens a budget's refusal still leaves room for."""

from __future__ import annotations

from ..accounts import budget
from ..config import ClientKey
from ..errors import ApiError
from .counters import Verdict

WORDS = {
    "max_streams": "generations running at once (max_streams)",
    "rpm": "requests in the last minute (rpm)",
    "tpm": "tokens in the last minute (tpm)",
    "max_sockets": "WebSockets open at once (max_sockets)",
}


def lowered(verdict: Verdict, money: budget.Reservation | None, max_tokens: int, rescues: int) -> int:
    """The max_tokens a budget's refusal leaves room for (0: none, or not a budget's refusal)."""
    if money is None or verdict.refused not in budget.NAMES:
        return 0
    fits = budget.fitting(money.price, money.prompt, rescues, budget.left(verdict.budgets))
    return fits if 0 < fits < max_tokens else 0


def refusal(key: ClientKey, verdict: Verdict, money: budget.Reservation | None = None, rescues: int = 0) -> ApiError:
    """The error of a refused admission: rate_limited, or budget_exhausted with what was spent
    (and, where even a whole budget holds no reservation of this prompt, that it never will)."""
    spend = next((found for found in verdict.budgets if found.name == verdict.refused), None)
    if spend is not None:
        if money is not None and not budget.fitting(money.price, money.prompt, rescues, budget.nano(spend.limit)):
            return ApiError("budget_exhausted", budget.never(key, spend, money.prompt), retry_after=spend.resets_in)
        return ApiError("budget_exhausted", budget.detail(key, spend), retry_after=max(1.0, verdict.retry_after))
    return ApiError("rate_limited", detail(key, verdict), retry_after=max(1.0, verdict.retry_after))


def detail(key: ClientKey, verdict: Verdict) -> str:
    limit = verdict.refused or ""
    allowed = getattr(key, limit, None) if limit in WORDS else None
    return f"The key {key.name!r} is at its limit of {allowed} {WORDS.get(limit, limit)}."
