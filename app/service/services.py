"""The generation service, framework-free: everything a view needs (settings, provider, stream
store, client keys, limits, fair admission, readiness), built once per app, and the one way a
view runs a generation: `admit` it (its route, and its key's limits: the verdict the view sends
as x-ratelimit-* headers), then `wait` for it or `stream` it (at once, or after a place in the
admission queue, `Pending`); its tokens are counted and its slot released when it ends."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ..accounts import reserving
from ..accounts.account import Account, Handoff
from ..alerts.thresholds import Alerts
from ..config import ClientKey, Settings, unpriced_notes
from ..config.keys import budgeted, counts_tokens
from ..conversations import ConversationStore
from ..errors import ApiError
from ..generation.outcome import Outcome
from ..generation.waiting import WaitGenerations
from ..limits import Limits
from ..metrics.catalogue import Metrics, NoMetrics
from ..providers import build_provider
from ..providers.base import Provider
from ..providers.call import ChatCall, Route
from ..response_cache import ResponseCache
from ..spend.tally import SpendTally
from ..streaming.abandon import Abandon
from ..streaming.store import StreamStore
from ..streaming.stream import DEFAULT_RETENTION, Retention, Stream
from ..streaming.wire import Wire
from . import building, running, takeover
from .admission import Admission, AdmissionQueue, Pending
from .keys import ClientKeys
from .readiness import Readiness

SHUTDOWN_WAIT_SECONDS = 2.0  # for stopped generations to close their upstream requests


# (the stream's client, its `Retention.ended_args`) -> its `Retention.ended`
Reviver = Callable[[str, dict[str, Any]], Callable[[Stream, Outcome], None]]


@dataclasses.dataclass(frozen=True)
class Services:
    """Everything a view needs, built once by create_app; also the app's side of a worker's
    graceful stop (`app.server.shutdown.Lifecycle`)."""

    settings: Settings
    provider: Provider
    store: StreamStore
    conversations: ConversationStore
    waits: WaitGenerations
    client_keys: ClientKeys
    limits: Limits
    queue: AdmissionQueue  # for a slot (MAX_STREAMS), fair across keys
    metrics: Metrics | NoMetrics
    readiness: Readiness
    started: int  # Unix time the services were built (the `created` of /v1/models)
    spending: SpendTally | None = None  # what keys and end users are charged, for the spend report
    alerts: Alerts | None = None  # budget alerts (BUDGET_ALERT_WEBHOOK)
    # What rebuilds a stream's `Retention.ended` from its `ended_args`, by wire (`Family.reviver`).
    revivers: dict[str, Reviver] = dataclasses.field(default_factory=dict)
    cache: ResponseCache | None = None  # whole answers kept and played back (RESPONSE_CACHE, a key's cache=)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Services for these settings."""
        metrics = Metrics() if settings.operations.metrics_enabled else NoMetrics()
        provider = build_provider(settings, metrics)
        waiting = lambda: provider.waiting() > 0  # noqa: E731
        abandon = Abandon(settings.local.local_abandon_seconds, waiting, settings.streams.abandon_seconds)
        store = building.store(settings, abandon)
        waits = WaitGenerations()
        keys, view = settings.keys, building.key_view(settings)
        limited = view is not None or any(key.limited or key.max_sockets is not None for key in keys)
        limits = building.limits(settings, metrics, shared=limited and settings.streams.stream_store == "redis")
        client_keys = ClientKeys(keys, view, settings.access.admin_api_keys)
        built = cls(
            settings=settings,
            provider=provider,
            store=store,
            conversations=building.conversations(settings),
            waits=waits,
            client_keys=client_keys,
            limits=limits,
            queue=building.queue(settings, metrics),
            metrics=metrics,
            readiness=Readiness(
                provider,
                store,
                settings.operations.ready_cache_seconds,
                accepting=lambda: waits.accepting,
                key_limits=(lambda: limits.check(settings.streams.stream_store == "redis")) if limited else None,
                notes=lambda: unpriced_notes(settings, client_keys.every_key()),
            ),
            started=int(time.time()),
            spending=building.spending(settings),
            alerts=building.alerts(settings, metrics),
            cache=building.response_cache(settings, metrics),
        )
        store.take_over_with(built.adopt)
        if built.alerts is not None:
            limits.watch = built.alerts.check
        return built

    @property
    def durable(self) -> bool:
        """Whether streams outlive this worker (a shared store): generations are worth finishing
        on a stop even when no client follows them here."""
        return self.settings.streams.stream_store == "redis"

    def admit(
        self,
        call: ChatCall,
        prompt_tokens: int | None,
        key: ClientKey | None,
        correlation_id: str = "",
        handoff: Handoff | None = None,
        end_user: str | None = None,
        cache_control: str | None = None,
    ) -> Admission:
        """Admit a generation of `call` for a request of `key` (for its `end_user`): its account,
        with its route (upstream_unavailable at once when every server of the model rests) and its
        key's ticket (rate_limited or budget_exhausted when a limit, the key's or its end user's,
        says no; None or a key without limits: nothing to count), and what the response cache
        makes of it as the client's `cache_control` asks. `handoff`: the starting request's,
        which logs the generation's completion while it is open."""
        admission = self._admitted(call, prompt_tokens, key, correlation_id, handoff, end_user)
        account = admission.account
        if self.cache is not None:
            account.lookup = self.cache.lookup(account.call, key, cache_control)
        return admission

    def _admitted(
        self,
        call: ChatCall,
        prompt_tokens: int | None,
        key: ClientKey | None,
        correlation_id: str,
        handoff: Handoff | None,
        end_user: str | None,
    ) -> Admission:
        route = self._route(call)
        if key is not None:
            route.owner = key.name  # its turn at a busy server: fair across keys
        account = Account(call, prompt_tokens, correlation_id, route, key, handoff, prices=self.settings.price_of)
        account.end_user, account.spending = end_user, self.spending
        if key is None:
            return Admission(account)
        self.client_keys.check_model(key, call.model)
        user = self.client_keys.end_user(key, end_user)
        if not key.limited and user is None:
            return Admission(account)
        price = reserving.dearest(self.settings, call) if budgeted(key, user) else None
        if counts_tokens(key, user) or price is not None:
            if prompt_tokens is None:
                prompt_tokens = self.provider.prompt_tokens(call.counted())  # tools' definitions included
            prompt_tokens += reserving.image_surcharge(self.settings, call)  # as the models bill them
        upstream = self.settings.upstream
        rescues = upstream.upstream_rescues + (upstream.upstream_takeovers if self.durable else 0)
        ticket, verdict = self.limits.admit(key, prompt_tokens or 0, call.max_tokens, price, rescues, user=user)
        account.reserve(ticket, self.limits)
        return Admission(account, verdict)

    def _route(self, call: ChatCall) -> Route:
        """Where the generation goes first; when every server of its model rests, its fallback
        models answer (the relay goes on to them), else upstream_unavailable at once."""
        try:
            return self.provider.route(call.model, self.provider.affinity(call))
        except ApiError:
            if call.fallbacks or (call.fallbacks is None and self.settings.fallbacks_of(call.model)):
                return Route()
            raise

    def wait(self, account: Account, sock: Any) -> Outcome:
        """Generate a whole reply for a wait-mode request, cancelled if the client of `sock`
        leaves first; raises the ApiError it ended with."""
        return running.wait(self, account, sock)

    def stream(
        self, account: Account, wire: Wire, client: str, retention: Retention = DEFAULT_RETENTION
    ) -> Stream | Pending:
        """Start a generation into a new stream in its own greenlet (`running.stream`): the
        stream, or the request's place in the admission queue."""
        return running.stream(self, account, wire, client, retention)

    def adopt(self, stream: Stream, record: dict[str, Any]) -> bool:
        """Continue here a stream taken over from a worker that died (`takeover`)."""
        return takeover.adopt(self, stream, record)

    def start(self) -> None:
        """Start background work (the store's expiry, the sampled metrics)."""
        self.store.start()
        self.limits.start()
        self.client_keys.start()
        if self.spending is not None:
            self.spending.start()
        if self.alerts is not None:
            self.alerts.start()
        self.metrics.watch(lambda: (len(self.store), self.provider.waiting()))
        if self.cache is not None and building.caches(self.settings):
            self.metrics.watch_cache(self.cache.held)

    def stop_accepting(self) -> None:
        """Refuse new generations: the worker stops."""
        self.store.stop_accepting()
        self.waits.stop_accepting()
        self.limits.stop_accepting()

    def generating(self) -> int:
        """How many generations (streaming and wait) are still running."""
        return self.store.live() + len(self.waits)

    def end_generations(self) -> None:
        """End every running generation with a terminal service_restarting error."""
        self.waits.end_all()
        self.store.end_live()

    def flushed(self) -> bool:
        """Whether the store holds every frame this worker's clients were shown."""
        return self.store.flushed()

    def close(self) -> None:
        """End every live generation (closing its upstream request), then release the provider."""
        self.waits.end_all()
        self.store.close(timeout=SHUTDOWN_WAIT_SECONDS)
        self.provider.close()
        self.limits.close()
        self.client_keys.close()
        if self.spending is not None:
            self.spending.close()
        if self.alerts is not None:
            self.alerts.close()
        self.conversations.close()
        if self.cache is not None:
            self.cache.close()
        self.metrics.close()

