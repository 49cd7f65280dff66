"""What a generation cost: the sum of its attempts' costs, each at the price of the model it asked
(the prompt, its part the server read from its cache at the cached price; every token generated,
delivered or not; the input a continuation sent again), else from its usage and its model's price."""

from __future__ import annotations

from typing import Any

from ..config.prices import Price
from ..providers.base import Usage


def cost(price: Price | None, usage: Usage) -> float | None:
    """The cost in USD (None: the model has no price)."""
    if price is None:
        return None
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    generated = usage.charged - usage.resent
    return price.cost(usage.prompt_tokens - cached + usage.resent, cached, generated)


def of_attempts(attempts: tuple[dict[str, Any], ...]) -> float | None:
    """The sum of the attempts' costs (None: none of their models has a price)."""
    costs = [attempt["cost_usd"] for attempt in attempts if "cost_usd" in attempt]
    return round(sum(costs), 9) if costs else None
