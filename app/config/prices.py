"""What each model costs, as UPSTREAMS_FILE's `prices` table gives it: USD per million tokens of
input, of input read from the server's prompt cache, of input written to it (Anthropic's and
OpenAI's newest models charge a write more than plain input; Anthropic's one-hour writes more
again: `cache_write_long`), and of output. A model without a price has no cost (its generations
are counted in tokens only)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .values import ConfigError

MAX_PRICED_MODELS = 256
MAX_PRICE = 100_000.0  # USD per million tokens: far above any model's, below a typo's
_FIELDS = ("input", "cached_input", "cache_write", "cache_write_long", "output")
_EXAMPLE = '{"gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6}}'


@dataclasses.dataclass(frozen=True)
class Price:
    """A model's price, USD per million tokens. Cached input costs what input costs unless
    given; so does a cache write, and a long write what a write costs."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_long: float | None = None

    def cost(self, fresh_input: int, cached_input: int, output: int, written: int = 0, written_long: int = 0) -> float:
        """The cost in USD of these tokens (rounded to a billionth of a dollar): `written` input
        tokens written to the prompt cache, `written_long` with the long lifetime, beside the
        fresh and the cached ones."""
        cached = self.input if self.cached_input is None else self.cached_input
        write = self.input if self.cache_write is None else self.cache_write
        long = write if self.cache_write_long is None else self.cache_write_long
        inputs = fresh_input * self.input + cached_input * cached + written * write + written_long * long
        return round((inputs + output * self.output) / 1e6, 9)

    def reserved(self) -> Price:
        """The price a reservation counts at: every input token at the dearest input rate (a
        prompt may be written to the cache whole), output at its own."""
        dearest = max(self.input, self.cache_write or 0.0, self.cache_write_long or 0.0)
        return Price(dearest, self.output)


def price_table(where: str, table: Any) -> dict[str, Price]:
    """The `prices` table: each model to its price; errors name the model and the field."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must map a model to its prices per million tokens, e.g. {_EXAMPLE}.")
    if len(table) > MAX_PRICED_MODELS:
        raise ConfigError(f"{where} prices {len(table)} models; at most {MAX_PRICED_MODELS}.")
    return {str(model): _price(f"{where}: {str(model)[:80]!r}", fields) for model, fields in table.items()}


def _price(where: str, fields: Any) -> Price:
    if not isinstance(fields, dict):
        raise ConfigError(f"{where} must be a table of prices per million tokens, e.g. {_EXAMPLE}.")
    for field in fields:
        if field not in _FIELDS:
            raise ConfigError(f"{where}: {str(field)[:40]!r} is not a price: use {', '.join(_FIELDS)}.")
    for field in ("input", "output"):
        if field not in fields:
            raise ConfigError(f"{where}: {field} is missing: give USD per million tokens (0 for free).")
    found = {field: _usd(f"{where}: {field}", value) for field, value in fields.items()}
    written, written_long = found.get("cache_write"), found.get("cache_write_long")
    return Price(found["input"], found["output"], found.get("cached_input"), written, written_long)


def _usd(where: str, value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= MAX_PRICE:
        raise ConfigError(f"{where} must be a number of USD per million tokens, from 0 to {MAX_PRICE:g}.")
    return float(value)
