"""Wait-mode generations: cancelled when the client leaves, ended by a worker that stops."""

from __future__ import annotations

import gevent
import pytest
from gevent import socket

from app.accounts.account import Account, Origin
from app.errors import ApiError
from app.generation.cancel import StreamCancelled
from app.generation.outcome import Outcome
from app.generation.waiting import WaitGenerations
from app.providers.call import ChatCall, Usage


class SlowRelay:
    """Stands for a Relay: runs until stopped; says how it ended."""

    account = Account(ChatCall("m", (), 10), None, Origin("cid"))

    def __init__(self, seconds: float = 30) -> None:
        self.seconds = seconds
        self.stopped_by: StreamCancelled | None = None

    def run(self) -> Outcome:
        try:
            gevent.sleep(self.seconds)
            return _outcome("stop")
        except StreamCancelled as stop:
            self.stopped_by = stop
            return _outcome("cancelled", stop.error)


def _outcome(finish: str, error: ApiError | None = None) -> Outcome:
    if error is not None:
        return Outcome("", 0, Usage(1, 0), 1.0, None, error=error)
    return Outcome("", 0, Usage(1, 0), 1.0, None, finish_reason=finish)


def test_a_client_that_disconnects_cancels_its_generation() -> None:
    server_side, client_side = socket.socketpair()
    waits = WaitGenerations()
    relay = SlowRelay()
    gevent.spawn_later(0.05, client_side.close)
    outcome = waits.run(relay, server_side)
    assert outcome.finish_reason == "cancelled" and relay.stopped_by.reason == "client_gone"
    assert len(waits) == 0
    server_side.close()


def test_bytes_from_a_client_that_stays_do_not_cancel() -> None:
    server_side, client_side = socket.socketpair()
    client_side.sendall(b"GET /next HTTP/1.1\r\n\r\n")  # a pipelined request
    outcome = WaitGenerations().run(SlowRelay(0.1), server_side)
    assert outcome.finish_reason == "stop"
    server_side.close()
    client_side.close()


def test_a_stopping_worker_ends_running_generations_and_refuses_new_ones() -> None:
    waits = WaitGenerations()
    relay = SlowRelay()
    running = gevent.spawn(waits.run, relay, None)
    gevent.sleep(0.01)
    assert len(waits) == 1
    waits.stop_accepting()
    waits.end_all()
    waits.end_all()  # a second stop must not hit the ending of the first
    outcome = running.get(timeout=2)
    assert outcome.error.error_code == "service_restarting"
    with pytest.raises(ApiError) as raised:
        waits.run(SlowRelay(), None)
    assert raised.value.error_code == "service_restarting"


def test_a_killed_request_takes_its_generation_with_it() -> None:
    waits = WaitGenerations()
    relay = SlowRelay()
    request = gevent.spawn(waits.run, relay, None)
    gevent.sleep(0.01)
    request.kill(block=True)
    gevent.sleep(0.01)
    assert relay.stopped_by is not None and relay.stopped_by.reason == "request_ended"
