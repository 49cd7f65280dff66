"""What a generation cost: the sum of its attempts' costs, each at the price of the model it asked
(the prompt, its part the server read from its cache at the cached price; every token generated,
delivered or not; the input a continuation sent again), else from its usage and its model's price;
and what a key that pays for delivery is charged of it (`delivered`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config.prices import Price
from ..providers.call import Usage


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


def delivered(
    attempts: tuple[dict[str, Any], ...], usage: Usage, price_of: Callable[[str], Price | None], model: str, output: int
) -> float | None:
    """What a key that pays for delivery is charged as a generation ends: the input of the first
    attempt that answered, at its model's price (one that failed read nothing its client got),
    and `output` tokens that reached the client at `model`'s (a whole answer's; a stream's are
    charged as they reach a client). None: neither has a price."""
    read, cached, asked = usage.prompt_tokens, usage.cached_tokens, model
    if attempts:
        answered = next((attempt for attempt in attempts if attempt["outcome"] != "failed"), None)
        read, cached, asked = (0, 0, model) if answered is None else (
            answered["input_tokens"], answered.get("cached_tokens", 0), answered["model"])  # fmt: skip
    inputs, outputs = price_of(asked), price_of(model)
    if inputs is None and outputs is None:
        return None
    cached = min(cached, read)
    paid = 0.0 if inputs is None else inputs.cost(read - cached, cached, 0)
    return round(paid + (0.0 if outputs is None else outputs.cost(0, 0, output)), 9)
