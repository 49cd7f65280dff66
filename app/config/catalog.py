"""The maintained price list (`genai-prices`, pinned in requirements.txt, read from the package,
never fetched): what a model costs by its maker's API and its context window. A model is found
by its name as its maker lists it (dated and aliased names too); a model the list does not know
(a self-hosted open-weight model, a fake) has no catalog price."""

from __future__ import annotations

import dataclasses
import datetime
import time
from decimal import Decimal
from typing import Any

from .prices import Price

MAX_LOOKED_UP = 1024  # model names remembered (a client's model is checked against the allowed list first)
FRESH_SECONDS = 60.0  # a price resolved this long ago is resolved again (some change by the hour)
SOURCE = "genai-prices"


@dataclasses.dataclass(frozen=True)
class Listed:
    """What the catalog says of one model: its price now (None: listed without one), its context
    window (None: not said), and the catalog's own id for it."""

    id: str
    price: Price | None
    context_window: int | None


class Catalog:
    """The catalog of one process: looked-up models remembered (a bounded set), prices renewed."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[float, Listed | None]] = {}

    def find(self, model: str) -> Listed | None:
        """What the catalog lists for `model` (None: it does not know it)."""
        now = time.monotonic()
        found = self._found.get(model)
        if found is not None and now - found[0] < FRESH_SECONDS:
            return found[1]
        listed = _look_up(model)
        if len(self._found) >= MAX_LOOKED_UP:
            self._found.clear()
        self._found[model] = (now, listed)
        return listed


CATALOG = Catalog()


def _look_up(model: str) -> Listed | None:
    try:
        from genai_prices import data_snapshot
    except ImportError:  # pragma: no cover - the package is a requirement
        return None
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
    except LookupError:
        return None
    try:
        prices = info.get_prices(datetime.datetime.now(datetime.UTC))
    except (LookupError, ValueError):
        return Listed(info.id, None, info.context_window)
    return Listed(info.id, _price(prices), info.context_window)


def _price(prices: Any) -> Price | None:
    """A ModelPrice as ChatWait's Price: the base rate of a tiered price (a prompt over the tier's
    start, 200,000 tokens on some models, costs more than ChatWait counts)."""
    read = {name: _usd(getattr(prices, name, None)) for name in _FIELDS}
    if read["input_mtok"] is None or read["output_mtok"] is None:
        return None
    return Price(
        read["input_mtok"],
        read["output_mtok"],
        read["cache_read_mtok"],
        read["cache_write_mtok"],
        read["cache_write_1h_mtok"],
    )


_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")


def _usd(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return float(value)
    base = getattr(value, "base", None)  # TieredPrices
    return float(base) if isinstance(base, Decimal | int | float) else None
