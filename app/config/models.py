"""What ChatWait knows of each model, as the settings read it: its price (UPSTREAMS_FILE's, else
the catalog's), its rules (UPSTREAMS_FILE's `models`, else the table's) and the most a reply of it
may ask; what GET /v1/models shows of it."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import catalog
from .catalog import CATALOG
from .prices import Price
from .rules import DEFAULT_OUTPUT_LIMIT, Rules, rules_of


class ModelKnowledge:
    """The settings' view of each model (a part of `Settings`: it reads their upstream and
    request groups)."""

    upstream: Any  # settings.UpstreamSettings
    requests: Any  # settings.RequestSettings

    def price_of(self, model: str) -> Price | None:
        """What `model` costs: UPSTREAMS_FILE's `prices`, else the catalog's (None: no price, no cost)."""
        found = self.upstream.upstreams_file
        price = None if found is None else found.prices.get(model)
        if price is None and self.upstream.model_catalog:
            listed = CATALOG.find(model)
            price = None if listed is None else listed.price
        return price

    def priced_by(self, model: str) -> str | None:
        """Where `model`'s price comes from: `operator` (UPSTREAMS_FILE), `catalog`, or None."""
        found = self.upstream.upstreams_file
        if found is not None and model in found.prices:
            return "operator"
        return catalog.SOURCE if self.upstream.model_catalog and self.price_of(model) is not None else None

    def rules_of(self, model: str) -> Rules:
        """`model`'s rules (UPSTREAMS_FILE's `models`, else the table's), its context window the
        catalog's where neither says."""
        found = self.upstream.upstreams_file
        rules = rules_of(model, {} if found is None else found.models)
        if rules.context_window is None and self.upstream.model_catalog:
            listed = CATALOG.find(model)
            if listed is not None and listed.context_window:
                rules = dataclasses.replace(rules, context_window=listed.context_window)
        return rules

    def output_limit(self, model: str) -> int:
        """The most tokens a reply of `model` is asked for: its output limit (DEFAULT_OUTPUT_LIMIT
        when nobody says), under MAX_TOKENS where that is set."""
        found = self.upstream.upstreams_file
        limit = rules_of(model, {} if found is None else found.models).max_output_tokens
        bound = self.requests.max_tokens
        if bound is None:
            return limit or DEFAULT_OUTPUT_LIMIT
        return bound if limit is None else min(bound, limit)

    def described(self, model: str) -> dict[str, Any]:
        """What GET /v1/models shows of `model` beside OpenAI's fields: its rules' public part,
        the most a reply may ask, and its price (USD per million tokens; None: none)."""
        found = self.rules_of(model).public()
        found["max_output_tokens"] = self.output_limit(model)
        price = self.price_of(model)
        found["pricing"] = None if price is None else dataclasses.asdict(price)
        return found
