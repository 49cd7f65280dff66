"""Running a generation for the services: in wait mode, or into a new stream (at once, or after
a place in the admission queue); on the provider the response cache gives it where it answers or
records, its account counted as it runs and settled (or released) once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..accounts.account import Account
from ..config import Settings
from ..errors import ApiError
from ..generation.outcome import Outcome
from ..generation.relay import Relay
from ..generation.waiting import WaitGenerations
from ..ids import random_id
from ..metrics.catalogue import Metrics, NoMetrics
from ..providers.base import Provider
from ..streaming import producer, revival
from ..streaming.store import StreamStore
from ..streaming.stream import Retention, Stream
from ..streaming.wire import Wire
from .admission import AdmissionQueue, Pending
from .settling import settled_with


class Services(Protocol):
    """What running a generation takes of the services (`services.Services`)."""

    settings: Settings
    provider: Provider
    store: StreamStore
    waits: WaitGenerations
    queue: AdmissionQueue
    metrics: Metrics | NoMetrics

    @property
    def durable(self) -> bool: ...


def wait(services: Services, account: Account, sock: Any) -> Outcome:
    """Generate a whole reply for a wait-mode request, cancelled if the client of `sock`
    leaves first; raises the ApiError it ended with."""
    relay = Relay(_provider_of(services, account), services.settings, account, None, metrics=services.metrics)
    outcome = None
    try:
        account.counting(relay.produced)
        outcome = services.waits.run(relay, sock)
    finally:
        account.settle(outcome, relay.produced, account.call.model, whole=True)
        _looked_up(account)
    if outcome.error is not None:
        raise outcome.error
    return outcome


def stream(services: Services, account: Account, wire: Wire, client: str, retention: Retention) -> Stream | Pending:
    """Start a generation into a new stream in its own greenlet; returns once the store has
    admitted the stream (the Redis store registers it meanwhile), or, when every slot is taken
    and ADMISSION_WAIT_SECONDS allows, the request's place in the queue (`Pending`). Its
    account is released if it cannot start."""
    account.stream_id = stream_id = random_id()
    call = account.call

    def open_slot() -> Stream:
        stream = services.store.create(account.correlation_id, call.model, wire, client, retention, stream_id)
        if services.durable and services.settings.upstream.upstream_takeovers:  # continued elsewhere if it dies
            stream.tenure.revival = revival.record(call, account.prompt_tokens, retention, account.revival())
        producer.start(stream, _provider_of(services, account), services.settings, account, services.metrics)
        _running(services, stream, account)
        return stream

    name = "" if account.key is None else account.key.name
    try:
        opened = services.queue.try_now(name, open_slot)
    except BaseException:
        account.release()
        _looked_up(account)
        raise
    return opened if opened is not None else _enqueue(services, name, stream_id, open_slot, account)


def _running(services: Services, stream: Stream, account: Account) -> None:
    """A stream whose producer started: admitted to the store, its account counted as it runs."""
    if services.queue.wait_seconds > 0:  # a slot freed here wakes the next waiter at once
        assert stream.producer is not None
        stream.producer.link(lambda _: services.queue.notify())
    services.store.admit(stream)
    if account.lookup is not None:
        assert stream.producer is not None
        stream.producer.link(lambda _: _looked_up(account))
    if account.limited or account.spending is not None:
        settled_with(account, stream)


def _provider_of(services: Services, account: Account) -> Provider:
    """The provider its generation runs on: the response cache's where it answers or records."""
    return services.provider if account.lookup is None else account.lookup.provider(services.provider)


def _enqueue(
    services: Services, name: str, stream_id: str, open_slot: Callable[[], Stream], account: Account
) -> Pending:
    """A place in the admission queue for a new stream of key `name` (ApiError when its key
    holds its share of a full queue: its account is released)."""
    try:
        waiter = services.queue.join(name)
    except ApiError:
        account.release()
        _looked_up(account)
        raise
    keepalive = services.settings.streams.keepalive_seconds
    turns = services.queue.turns(name, open_slot, services.store.has_room, keepalive, waiter)

    def never_opened() -> None:
        services.queue.leave(waiter)
        account.release()
        _looked_up(account)

    return Pending(stream_id, turns, never_opened, lambda: services.queue.hang_up(waiter))


def _looked_up(account: Account) -> None:
    """Its generation is over (or never starts): what the response cache made of it ends."""
    if account.lookup is not None:
        account.lookup.finish()
