"""What a generation cost, from its usage and its model's price: the prompt (the part the server
read from its cache at the cached price), every token generated over its attempts (delivered or
not), and the input its continuations sent again."""

from __future__ import annotations

from ..config.prices import Price
from ..providers.base import Usage


def cost(price: Price | None, usage: Usage) -> float | None:
    """The cost in USD (None: the model has no price)."""
    if price is None:
        return None
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    generated = usage.charged - usage.resent
    return price.cost(usage.prompt_tokens - cached + usage.resent, cached, generated)
