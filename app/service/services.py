"""The generation service, framework-free: everything a view needs (settings, provider, stream
store, client keys, limits, fair admission, readiness), built once per app, and the one way a
view runs a generation: `admit` it (its account, built whole: its route, and its payer's limits:
the verdict the view sends as x-ratelimit-* headers), then `wait` for it or `stream` it (at once,
or after a place in the admission queue, `Pending`); its account closes once, when it ends."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ..accounts.account import Account, Asked, Origin
from ..accounts.billing import Billing
from ..accounts.payer import Payer
from ..alerts.thresholds import Alerts
from ..config import Settings
from ..conversations import ConversationStore
from ..generation.outcome import Outcome
from ..generation.waiting import WaitGenerations
from ..limits import Limits
from ..metrics.catalogue import Metrics, NoMetrics
from ..providers import build_provider
from ..providers.base import Provider
from ..response_cache import ResponseCache
from ..streaming.abandon import Abandon
from ..streaming.store import StreamStore
from ..streaming.stream import DEFAULT_RETENTION, Retention, Stream
from ..streaming.wire import Wire
from . import building
from .admission import AdmissionQueue, Pending
from .admitting import Admission, Admitter
from .keys import ClientKeys
from .readiness import Readiness
from .running import Runner
from .takeover import Takeover

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
    billing: Billing  # where payers' money goes: the limits, the prices, the spend tally
    admitter: Admitter
    runner: Runner
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
        keys, view = settings.keys, building.key_view(settings)
        limited = view is not None or any(key.limited or key.max_sockets is not None for key in keys)
        limits = building.limits(settings, metrics, counting=limited)
        client_keys = ClientKeys(keys, view, settings.access.admin_api_keys)
        billing = Billing(limits, settings.price_of, building.spending(settings, limits))
        queue, cache = building.queue(settings, metrics), building.response_cache(settings, metrics)
        waits, durable = WaitGenerations(), settings.streams.stream_store == "redis"
        built = cls(
            settings=settings,
            provider=provider,
            store=store,
            conversations=building.conversations(settings),
            waits=waits,
            client_keys=client_keys,
            limits=limits,
            queue=queue,
            metrics=metrics,
            readiness=building.readiness(settings, provider, store, waits, limits if limited else None, client_keys),
            started=int(time.time()),
            billing=billing,
            admitter=Admitter(settings, provider, client_keys, limits, billing, cache, durable),
            runner=Runner(settings, provider, store, waits, queue, metrics, durable),
            alerts=building.alerts(settings, metrics),
            cache=cache,
        )
        takeover = Takeover(settings, provider, client_keys, limits, billing, metrics, built.revivers)
        store.take_over_with(takeover.adopt)  # the revivers are the families' once the app is made
        if built.alerts is not None:
            limits.watch = built.alerts.check
        return built

    @property
    def durable(self) -> bool:
        """Whether streams outlive this worker (a shared store): generations are worth finishing
        on a stop even when no client follows them here."""
        return self.runner.durable

    def admit(self, asked: Asked, payer: Payer, origin: Origin) -> Admission:
        """Admit a generation of `asked` for `payer` from the request `origin` (`Admitter.admit`):
        its account, built whole, and where its payer's limits stand."""
        return self.admitter.admit(asked, payer, origin)

    def wait(self, account: Account, sock: Any) -> Outcome:
        """Generate a whole reply for a wait-mode request (`Runner.wait`)."""
        return self.runner.wait(account, sock)

    def stream(
        self, account: Account, wire: Wire, client: str, retention: Retention = DEFAULT_RETENTION
    ) -> Stream | Pending:
        """Start a generation into a new stream (`Runner.stream`): the stream, or the request's
        place in the admission queue."""
        return self.runner.stream(account, wire, client, retention)

    def start(self) -> None:
        """Start background work (the store's expiry, the sampled metrics)."""
        self.store.start()
        self.limits.start()
        self.client_keys.start()
        if self.billing.spending is not None:
            self.billing.spending.start()
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
        if self.billing.spending is not None:
            self.billing.spending.close()
        if self.alerts is not None:
            self.alerts.close()
        self.conversations.close()
        if self.cache is not None:
            self.cache.close()
        self.metrics.close()
