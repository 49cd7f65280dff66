"""Running a generation (`Runner`): in wait mode, or into a new stream (at once, or after a place
in the admission queue); on the provider the response cache gives it where it answers or records,
its account counted as it runs and closed once, however it ends or never starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..accounts.account import Account
from ..config import Settings
from ..errors import ApiError
from ..generation.outcome import Outcome
from ..generation.relay import Relay
from ..generation.waiting import WaitGenerations
from ..metrics.catalogue import Metrics, NoMetrics
from ..providers.base import Provider
from ..streaming import producer, revival
from ..streaming.store import StreamStore
from ..streaming.stream import Retention, Stream
from ..streaming.wire import Wire
from .admission import AdmissionQueue, Pending
from .settling import closed_with


@dataclasses.dataclass(frozen=True)
class Runner:
    """What running a generation uses: the settings, the provider, the stream store, the wait-mode
    generations, the admission queue and the metrics; `durable`: streams outlive this worker."""

    settings: Settings
    provider: Provider
    store: StreamStore
    waits: WaitGenerations
    queue: AdmissionQueue
    metrics: Metrics | NoMetrics
    durable: bool = False

    def wait(self, account: Account, sock: Any) -> Outcome:
        """Generate a whole reply for a wait-mode request, cancelled if the client of `sock`
        leaves first; raises the ApiError it ended with."""
        relay = Relay(self._provider_of(account), self.settings, account, None, metrics=self.metrics)
        outcome = None
        try:
            account.counting(relay.produced)
            outcome = self.waits.run(relay, sock)
        finally:
            account.close(outcome)
        if outcome.error is not None:
            raise outcome.error
        return outcome

    def stream(self, account: Account, wire: Wire, client: str, retention: Retention) -> Stream | Pending:
        """Start a generation into a new stream (its id: the account's) in its own greenlet; returns
        once the store has admitted the stream (the Redis store registers it meanwhile), or, when
        every slot is taken and ADMISSION_WAIT_SECONDS allows, the request's place in the queue
        (`Pending`). Its account is closed unstarted if it cannot start."""

        def open_slot() -> Stream:
            return self._opened(account, wire, client, retention)

        name = account.payer.name
        try:
            opened = self.queue.try_now(name, open_slot)
        except BaseException:
            account.close()
            raise
        return opened if opened is not None else self._enqueue(name, open_slot, account)

    def _opened(self, account: Account, wire: Wire, client: str, retention: Retention) -> Stream:
        """A new stream for the account's generation, its producer started, admitted to the store."""
        call, origin = account.call, account.origin
        assert origin.stream_id is not None, "a streamed generation's origin names its stream"
        stream = self.store.create(origin.correlation_id, call.model, wire, client, retention, origin.stream_id)
        if self.durable and self.settings.upstream.upstream_takeovers:  # continued elsewhere if it dies
            stream.tenure.revival = revival.record(call, account.prompt_tokens, retention, account.revival())
        producer.start(stream, self._provider_of(account), self.settings, account, self.metrics)
        if self.queue.wait_seconds > 0:  # a slot freed here wakes the next waiter at once
            assert stream.producer is not None
            stream.producer.link(lambda _: self.queue.notify())
        self.store.admit(stream)
        if account.settles:
            closed_with(account, stream)
        return stream

    def _provider_of(self, account: Account) -> Provider:
        """The provider its generation runs on: the response cache's where it answers or records."""
        return self.provider if account.lookup is None else account.lookup.provider(self.provider)

    def _enqueue(self, name: str, open_slot: Callable[[], Stream], account: Account) -> Pending:
        """A place in the admission queue for a new stream of key `name` (ApiError when its key
        holds its share of a full queue: its account is closed unstarted)."""
        try:
            waiter = self.queue.join(name)
        except ApiError:
            account.close()
            raise
        keepalive = self.settings.streams.keepalive_seconds
        positions = self.queue.positions(name, open_slot, self.store.has_room, keepalive, waiter)

        def never_opened() -> None:
            self.queue.leave(waiter)
            account.close()

        assert account.origin.stream_id is not None
        return Pending(account.origin.stream_id, positions, never_opened, lambda: self.queue.hang_up(waiter))
