"""Admitting a generation (`Admitter.admit`): the one place its account is built, whole. Its route
(upstream_unavailable at once when every server of its model rests and no fallback answers), its
payer's reservation (rate_limited or budget_exhausted when a limit says no; the call then asks for
no more than was reserved), what the response cache makes of it, and where its money goes."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from ..accounts import reserving
from ..accounts.account import Account, Asked, Origin
from ..accounts.billing import Billing
from ..accounts.payer import Payer
from ..accounts.ticket import Ticket
from ..config import Settings
from ..config.upstreams import SAMPLING_REFUSED_FROM
from ..errors import ApiError
from ..limits import Limits, Verdict
from ..providers.base import Provider
from ..providers.call import ChatCall, Route
from ..response_cache import ResponseCache
from .keys import ClientKeys


class Admission(NamedTuple):
    """A generation admitted to start: its account, and (for a payer with limits) the verdict its
    answer's x-ratelimit-* headers tell (None when the counters were out of reach and it was
    admitted anyway)."""

    account: Account
    verdict: Verdict | None = None
    adapted: tuple[str, ...] = ()  # what ChatWait sends other than the client asked, and why

    @property
    def limited(self) -> bool:
        """Whether its payer's limits were checked (its answer tells where they stand)."""
        return self.account.limited


@dataclasses.dataclass(frozen=True)
class Admitter:
    """What admitting a generation uses: the settings (prices, fallbacks, continuations allowed),
    the provider (routes, prompt counts), the client keys, their limits, the billing and the
    response cache (None: off)."""

    settings: Settings
    provider: Provider
    client_keys: ClientKeys
    limits: Limits
    billing: Billing
    cache: ResponseCache | None = None
    durable: bool = False  # streams outlive a worker (Redis): a takeover may continue a generation

    def admit(self, asked: Asked, payer: Payer, origin: Origin) -> Admission:
        """Admit a generation of `asked` for `payer` (its key and end user, resolved here:
        `ClientKeys.resolve`), from the request `origin`: its account, built whole, and its
        payer's verdict."""
        call = asked.call
        route = self._route(call)
        key = payer.key
        if key is not None:
            route.owner = key.name  # its turn at a busy server: fair across keys
            self.client_keys.check_model(key, call.model)
            payer = self.client_keys.resolve(payer)
        ticket, verdict = self._reserved(asked, payer) if payer.limited else (None, None)
        lowered: tuple[str, ...] = ()
        if ticket is not None:
            most = ticket.most_tokens(call.max_tokens)
            if most < call.max_tokens:
                why = "budget" if ticket.max_tokens == most else "tpm"
                lowered = (f"max_tokens lowered to {most} (the key's {why})",)
                call = dataclasses.replace(call, max_tokens=most)
        adapted = (*lowered, *self.provider.adaptations(call))  # as the call is sent, its bound lowered
        lookup = None if self.cache is None else self.cache.lookup(call, payer, origin.cache_header, self._fixed(call))
        account = Account(call, asked.prompt_tokens, origin, route, payer, ticket, lookup, self.billing)
        return Admission(account, verdict, adapted)

    def _reserved(self, asked: Asked, payer: Payer) -> tuple[Ticket, Verdict | None]:
        """Its payer's counters' ticket for it: its prompt (counted here where intake did not),
        its images and files as their models bill them, its max_tokens and (with a budget) the most it can
        cost, with every continuation it may take."""
        call, prompt_tokens = asked.call, asked.prompt_tokens
        price = reserving.dearest(self.settings, call) if payer.budgeted else None
        if payer.counts_tokens or price is not None:
            if prompt_tokens is None:
                prompt_tokens = self.provider.prompt_tokens(call.counted())  # tools' definitions included
            prompt_tokens += reserving.surcharge(self.settings, call)  # images and files as the models bill them
        upstream = self.settings.upstream
        rescues = upstream.upstream_rescues + (upstream.upstream_takeovers if self.durable else 0)
        floor = min(call.max_tokens, self.settings.access.budget_min_tokens)
        needs = reserving.Needs(prompt_tokens or 0, call.max_tokens, price, rescues, floor=floor)
        return self.limits.admit(payer, needs)

    def _fixed(self, call: ChatCall) -> bool:
        """Whether `call`'s sampling is not its client's to choose: its model takes only its
        default, or the client's own Messages API version takes no sampling parameter."""
        native = call.native
        version = native.get("version") if native is not None and native.get("api") == "messages" else None
        return self.settings.rules_of(call.model).sampling == "default" or (version or "") >= SAMPLING_REFUSED_FROM

    def _route(self, call: ChatCall) -> Route:
        """Where the generation goes first; when every server of its model rests, its fallback
        models answer (the relay goes on to them), else upstream_unavailable at once."""
        try:
            return self.provider.route(call.model, self.provider.affinity(call))
        except ApiError:
            if call.fallbacks or (call.fallbacks is None and self.settings.fallbacks_of(call.model)):
                return Route()
            raise
