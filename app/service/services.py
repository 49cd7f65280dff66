"""The generation service, framework-free: everything a view needs (settings, provider, stream
store, client keys, limits, fair admission, readiness), built once per app, and the one way a
view runs a generation: `admit` it (its route, and its key's limits: the verdict the view sends
as x-ratelimit-* headers), then `wait` for it or `stream` it (at once, or after a place in the
admission queue, `Pending`); its tokens are counted and its slot released when it ends."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import ClientKey, Settings
from ..conversations import Bounds, ConversationStore, MemoryConversations
from ..errors import ApiError
from ..generation import cost, rescue
from ..generation.outcome import Outcome
from ..generation.relay import Relay
from ..generation.report import Handoff
from ..generation.waiting import WaitGenerations
from ..ids import random_id
from ..limits import Counters, Limits, MemoryCounters, Ticket
from ..metrics.catalogue import Metrics, NoMetrics
from ..providers import build_provider
from ..providers.base import ChatCall, Provider, Route
from ..providers.deltas import ReplyParts
from ..streaming import producer, revival
from ..streaming.abandon import Abandon
from ..streaming.store import MemoryStreamStore, StreamStore
from ..streaming.stream import DEFAULT_RETENTION, Retention, Stream
from ..streaming.wire import Wire
from . import reserving
from .admission import Admission, AdmissionQueue, Pending
from .keys import ClientKeys
from .readiness import Readiness

if TYPE_CHECKING:
    from ..connect.redis import Topology

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
    # What rebuilds a stream's `Retention.ended` from its `ended_args`, by wire (`Family.reviver`).
    revivers: dict[str, Reviver] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """Services for these settings."""
        metrics = Metrics() if settings.metrics_enabled else NoMetrics()
        provider = build_provider(settings, metrics)
        abandon = Abandon(settings.local_abandon_seconds, lambda: provider.waiting() > 0, settings.abandon_seconds)
        store = _build_store(settings, abandon)
        waits = WaitGenerations()
        keys = settings.keys
        limited = any(key.limited or key.max_sockets is not None for key in keys)
        limits = _build_limits(settings, metrics, shared=limited and settings.stream_store == "redis")
        built = cls(
            settings=settings,
            provider=provider,
            store=store,
            conversations=_build_conversations(settings),
            waits=waits,
            client_keys=ClientKeys(keys),
            limits=limits,
            queue=AdmissionQueue(
                settings.admission_wait_seconds,
                places=settings.admission_queue_size,
                over_share=lambda name: metrics.key_refused(name, "queue_share") if name else None,
            ),
            metrics=metrics,
            readiness=Readiness(
                provider,
                store,
                settings.ready_cache_seconds,
                accepting=lambda: waits.accepting,
                key_limits=(lambda: limits.check(settings.stream_store == "redis")) if limited else None,
            ),
            started=int(time.time()),
        )
        store.take_over_with(built.adopt)
        return built

    @property
    def durable(self) -> bool:
        """Whether streams outlive this worker (a shared store): generations are worth finishing
        on a stop even when no client follows them here."""
        return self.settings.stream_store == "redis"

    def admit(self, call: ChatCall, prompt_tokens: int | None, key: ClientKey | None) -> Admission:
        """Admit a generation of `call` for a request of `key`: its route (upstream_unavailable at
        once when every server of the model rests), then its key's limits (rate_limited or
        budget_exhausted when one says no; None or a key without limits: nothing to count)."""
        route = self._route(call)
        if key is not None:
            route.owner = key.name  # its turn at a busy server: fair across keys
        if key is None or not key.limited:
            return Admission(route)
        price = reserving.dearest(self.settings, call) if key.budgeted else None
        if key.tpm is not None or price is not None:
            if prompt_tokens is None:
                prompt_tokens = self.provider.prompt_tokens(call.counted())  # tools' definitions included
            prompt_tokens += reserving.image_surcharge(self.settings, call)  # as the models bill them
        rescues = self.settings.upstream_rescues + (self.settings.upstream_takeovers if self.durable else 0)
        ticket, verdict = self.limits.admit(key, prompt_tokens or 0, call.max_tokens, price, rescues)
        return Admission(route, ticket, verdict)

    def _route(self, call: ChatCall) -> Route:
        """Where the generation goes first; when every server of its model rests, its fallback
        models answer (the relay goes on to them), else upstream_unavailable at once."""
        try:
            return self.provider.route(call.model, self.provider.affinity(call))
        except ApiError:
            if call.fallbacks or (call.fallbacks is None and self.settings.fallbacks_of(call.model)):
                return Route()
            raise

    def wait(
        self,
        admitted: Admission,
        call: ChatCall,
        prompt_tokens: int | None,
        correlation_id: str,
        sock: Any,
        handoff: Handoff | None = None,
    ) -> Outcome:
        """Generate a whole reply for a wait-mode request, cancelled if the client of `sock`
        leaves first; raises the ApiError it ended with. `handoff`: see `producer.start`."""
        ticket, call = admitted.ticket, admitted.fitted(call)
        relay = Relay(
            self.provider,
            self.settings,
            call,
            prompt_tokens,
            None,
            correlation_id,
            metrics=self.metrics,
            route=admitted.route,
            handoff=handoff,
        )
        outcome = None
        try:
            if ticket is not None:
                ticket.progress = relay.produced
            outcome = self.waits.run(relay, sock)
        finally:
            if ticket is not None:
                self.limits.end(ticket, *self._spent(ticket, outcome, relay.produced, call.model, whole=True))
        if outcome.error is not None:
            raise outcome.error
        return outcome

    def stream(
        self,
        admitted: Admission,
        call: ChatCall,
        prompt_tokens: int | None,
        wire: Wire,
        correlation_id: str,
        client: str,
        retention: Retention = DEFAULT_RETENTION,
        key: ClientKey | None = None,
        handoff: Handoff | None = None,
    ) -> Stream | Pending:
        """Start a generation into a new stream in its own greenlet; returns once the store has
        admitted the stream (the Redis store registers it meanwhile), or, when every slot is taken
        and ADMISSION_WAIT_SECONDS allows, the request's place in the queue (`Pending`). Its
        ticket is released if it cannot start."""
        ticket, call = admitted.ticket, admitted.fitted(call)
        stream_id = random_id()

        def open_slot() -> Stream:
            stream = self.store.create(correlation_id, call.model, wire, client, retention, stream_id)
            if self.durable and self.settings.upstream_takeovers:  # continued elsewhere if this worker dies
                held = None if ticket is None else self.limits.held(ticket)
                stream.tenure.revival = revival.record(call, prompt_tokens, retention, held)
            route = admitted.route
            producer.start(stream, self.provider, self.settings, call, prompt_tokens, self.metrics, route, handoff)
            self._running(stream, ticket)
            return stream

        name = "" if key is None else key.name
        try:
            opened = self.queue.try_now(name, open_slot)
        except BaseException:
            self._end(ticket)
            raise
        return opened if opened is not None else self._enqueue(name, stream_id, open_slot, ticket)

    def _running(self, stream: Stream, ticket: Ticket | None) -> None:
        """A stream whose producer started: admitted to the store, its ticket counted as it runs."""
        if self.queue.wait_seconds > 0:  # a slot freed here wakes the next waiter at once
            assert stream.producer is not None
            stream.producer.link(lambda _: self.queue.notify())
        self.store.admit(stream)
        if ticket is not None:
            self._count_while_it_runs(ticket, stream)

    def adopt(self, stream: Stream, record: dict[str, Any]) -> bool:
        """Continue here a stream taken over from a worker that died (`record`: its call, as
        `revival` keeps it), from the text its clients have; False when it cannot be continued
        (a tool call or a refusal cut, reasoning without text, no server that continues)."""
        call, prompt_tokens = revival.call_of(record)
        if stream.chunks:
            text, _, parts = stream.result() or ("", None, ReplyParts())
            if not rescue.continuable(text, parts):
                return False
            if self.provider.continuation(call.model, Route()) not in rescue.STRATEGIES:
                return False
        args = stream.retention.ended_args
        revive = self.revivers.get(stream.wire_name)
        if args is not None and revive is not None:
            stream.retention = dataclasses.replace(stream.retention, ended=revive(stream.client, args))
        producer.start(stream, self.provider, self.settings, call, prompt_tokens, self.metrics)
        held, key = record.get("ticket"), None
        if isinstance(held, dict):
            key = next((k for k in self.settings.keys if k.name == held.get("key") and k.limited), None)
        if key is not None:  # it keeps its key's place (max_streams) and its tokens are charged
            self._count_while_it_runs(self.limits.resume(key, held, reserving.dearest(self.settings, call)), stream)
        return True

    def _enqueue(self, name: str, stream_id: str, open_slot: Callable[[], Stream], ticket: Ticket | None) -> Pending:
        """A place in the admission queue for a new stream of key `name` (ApiError when its key
        holds its share of a full queue: its ticket is released)."""
        try:
            waiter = self.queue.join(name)
        except ApiError:
            self._end(ticket)
            raise
        turns = self.queue.turns(name, open_slot, self.store.has_room, self.settings.keepalive_seconds, waiter)

        def never_opened() -> None:
            self.queue.leave(waiter)
            self._end(ticket)

        return Pending(stream_id, turns, never_opened, lambda: self.queue.hang_up(waiter))

    def _end(self, ticket: Ticket | None) -> None:
        """A generation admitted under its key's limits never started: release its slot."""
        if ticket is not None:
            self.limits.end(ticket, 0)

    def _count_while_it_runs(self, ticket: Ticket, stream: Stream) -> None:
        """Count a stream's completion tokens as its chunks come, and end its ticket with it (with
        its outcome's usage and cost, also when its producer ended before it got here)."""
        ticket.progress = lambda: stream.chunks
        greenlet = stream.producer

        def ended(done: Any) -> None:
            if stream.tenure.moved is not None:  # another worker took it over: it settles the ticket
                self.limits.hand_over(ticket)
                return
            outcome = done.value if done is not None and done.successful() else None
            self.limits.end(ticket, *self._spent(ticket, outcome, lambda: stream.chunks, stream.model, whole=False))

        if greenlet is None or greenlet.dead:  # a short reply can end while the store admits it
            ended(greenlet)
            return
        greenlet.link(ended)

    def _spent(
        self, ticket: Ticket, outcome: Outcome | None, produced: Callable[[], int], model: str, whole: bool
    ) -> tuple[int, float | None]:
        """What a generation's ticket settles: its completion tokens and its cost (where its model
        has a price); without an outcome, the tokens it produced, at its price. A key that pays
        for delivery pays the input and, of a `whole` answer, its reply (a stream's output is
        charged as it reaches a client: `apis.streams`)."""
        if outcome is None:
            return produced(), None
        if not ticket.key.pays_delivered:
            return outcome.usage.charged, outcome.cost_usd
        output = outcome.usage.completion_tokens if whole and outcome.error is None else 0
        charged = cost.delivered(outcome.attempts, outcome.usage, self.settings.price_of, model, output)
        return outcome.usage.charged, charged

    def start(self) -> None:
        """Start background work (the store's expiry, the sampled metrics)."""
        self.store.start()
        self.limits.start()
        self.metrics.watch(lambda: (len(self.store), self.provider.waiting()))

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

    def settled(self) -> bool:
        """Whether the store holds every frame this worker's clients were shown."""
        return self.store.settled()

    def close(self) -> None:
        """End every live generation (closing its upstream request), then release the provider."""
        self.waits.end_all()
        self.store.close(timeout=SHUTDOWN_WAIT_SECONDS)
        self.provider.close()
        self.limits.close()
        self.conversations.close()
        self.metrics.close()


def _build_store(settings: Settings, abandon: Abandon) -> StreamStore:
    """The stream store STREAM_STORE names (Redis is imported only when used)."""
    if settings.stream_store == "redis":
        from ..streaming.redis.deferred import open_store
        from ..streaming.redis.store import RedisSettings, RedisStreamStore

        config = RedisSettings(
            _topology(settings),
            settings.max_streams,
            settings.stream_ttl_seconds,
            settings.max_stream_seconds,
            settings.redis_outage_seconds,
            settings.max_stored_responses,
            settings.upstream_rescues,
            settings.upstream_takeovers,
        )
        return open_store(lambda: RedisStreamStore(config, abandon=abandon))  # boots whatever Redis does
    return MemoryStreamStore(
        settings.max_streams, settings.stream_ttl_seconds, abandon=abandon, max_stored=settings.max_stored_responses
    )


def _build_conversations(settings: Settings) -> ConversationStore:
    """Conversations where the streams are: in Redis, or in this worker's memory."""
    bounds = Bounds(
        settings.max_conversations,
        settings.max_conversation_items,
        settings.conversation_ttl_seconds,
        key_bytes=settings.conversation_key_bytes,
        worker_bytes=settings.conversation_worker_bytes,
    )
    if settings.stream_store == "redis":
        from ..conversations.redis import RedisConversations

        return RedisConversations(_topology(settings), bounds)
    return MemoryConversations(bounds)


def _topology(settings: Settings) -> Topology:
    """Where Redis is: one server, a primary found through Sentinel, or a Cluster."""
    from ..connect.redis import Topology

    return Topology.of(
        settings.redis_url, settings.redis_sentinels, settings.redis_sentinel_master or "", settings.redis_cluster
    )


def _build_limits(settings: Settings, metrics: Metrics | NoMetrics, shared: bool) -> Limits:
    """Per-key limits counted in Redis when `shared` (the Redis store, and some key has limits),
    shared by every worker and instance; else in this worker's memory."""
    counters: Counters = MemoryCounters()
    if shared:
        from ..limits.shared import RedisCounters

        counters = RedisCounters(_topology(settings))
    return Limits(counters, metrics, fail_open=settings.key_limits_without_redis == "open")
