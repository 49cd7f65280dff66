"""What a generation cost: the sum of its attempts' costs, each at the price of the model it asked
(the prompt, its parts the server read from its cache or wrote to it at their own prices; every
token generated, delivered or not; the input a continuation sent again), else from its usage and
its model's price; and what a key that pays for delivery is charged of it (`delivered`)."""

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
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    long = min(usage.cache_write_long_tokens, written)
    generated = usage.charged - usage.resent
    fresh = usage.prompt_tokens - cached - written + usage.resent
    return price.cost(fresh, cached, generated, written - long, long)


def input_cost(price: Price, attempt: dict[str, Any]) -> float:
    """What an attempt's input cost as its ledger entry counts it: fresh, read from the server's
    prompt cache, and written to it (with the long lifetime or not)."""
    read = attempt["input_tokens"]
    cached = min(attempt.get("cached_tokens", 0), read)
    written = min(attempt.get("cache_write_tokens", 0), read - cached)
    long = min(attempt.get("cache_write_long_tokens", 0), written)
    return price.cost(read - cached - written, cached, 0, written - long, long)


def replayed(attempts: tuple[dict[str, Any], ...]) -> bool:
    """Whether the response cache answered the whole generation: nothing read or generated upstream."""
    return bool(attempts) and attempts[-1]["outcome"] == "cached" and all(a["outcome"] == "cached" for a in attempts)


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
    read: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_long_tokens": usage.cache_write_long_tokens,
    }
    asked = model
    if attempts:
        answered = next((attempt for attempt in attempts if attempt["outcome"] != "failed"), None)
        read, asked = ({"input_tokens": 0}, model) if answered is None else (answered, answered["model"])
    inputs, outputs = price_of(asked), price_of(model)
    if inputs is None and outputs is None:
        return None
    paid = 0.0 if inputs is None else input_cost(inputs, read)
    return round(paid + (0.0 if outputs is None else outputs.cost(0, 0, output)), 9)
