"""A worker's graceful stop (SIGTERM, or SIGHUP's reload): no client is left without an ending.

1. The worker stops accepting connections, and the app refuses new generations
   (`503 service_restarting`, with Retry-After).
2. Running generations get until GUNICORN_GRACEFUL_TIMEOUT, less a margin, to finish.
3. Those still running then end with exactly one terminal `service_restarting` error, partial
   text kept; their followers write it out during the margin.
4. Until the deadline, the worker stays while connections are served, or while the shared store
   lacks frames its clients were shown (Redis paused or failing: a worker gone before Redis took
   them would leave Redis to end those streams otherwise than their clients saw them).
5. Connections left (idle keep-alive, clients that do not read) are closed.

The app takes part through the `Lifecycle` it registers in `app.extensions[LIFECYCLE]`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import gevent

from ..traces import shutdown_tracing

LIFECYCLE = "chatwait.lifecycle"
END_MARGIN_SECONDS = 2.0  # for terminal events to reach the clients
STOP_SECONDS = 1.0  # for the last handlers to be killed before the master's deadline
POLL_SECONDS = 0.1
HEARTBEAT_SECONDS = 1.0


class Lifecycle(Protocol):
    """What a worker's stop needs from the app."""

    def stop_accepting(self) -> None:
        """Refuse new generations from now on."""

    @property
    def durable(self) -> bool:
        """Whether streams outlive the worker (a shared store): then generations are left to
        finish even once no connection follows them."""

    def generating(self) -> int:
        """How many generations are still running."""

    def end_generations(self) -> None:
        """End every running generation with a terminal service_restarting error."""

    def flushed(self) -> bool:
        """Whether the store holds every frame this worker's clients were shown."""


def lifecycle_of(app: Any) -> Lifecycle | None:
    """The Lifecycle the WSGI app registered, if any."""
    return getattr(app, "extensions", {}).get(LIFECYCLE)


def drain(
    servers: Iterable[Any], lifecycle: Lifecycle | None, graceful_seconds: float, heartbeat: Callable[[], None]
) -> None:
    """Stop `servers` (gevent StreamServers) within `graceful_seconds`, as the module docstring says.

    `heartbeat` is called about every second (gunicorn's worker notify: the master must not
    think the worker hung while it drains).
    """
    servers = list(servers)
    started = time.monotonic()
    margin = min(END_MARGIN_SECONDS, graceful_seconds / 4)
    last = started + max(0.0, graceful_seconds - STOP_SECONDS)
    for server in servers:
        server.close()
    if lifecycle is not None:
        lifecycle.stop_accepting()
        durable = lifecycle.durable
        _wait_until(lambda: not lifecycle.generating() or (not durable and _idle(servers)), last - margin, heartbeat)
        if lifecycle.generating():
            lifecycle.end_generations()
    flushed = lifecycle.flushed if lifecycle is not None else lambda: True
    _wait_until(lambda: _idle(servers) and flushed(), last, heartbeat)
    for server in servers:
        server.stop(timeout=STOP_SECONDS)
    shutdown_tracing()  # the spans still queued go out before the worker exits


def _idle(servers: list[Any]) -> bool:
    """Whether no connection is being served any more."""
    return all(server.pool.free_count() == server.pool.size for server in servers)


def _wait_until(done: Callable[[], bool], deadline: float, heartbeat: Callable[[], None]) -> None:
    beat = time.monotonic()
    while not done() and time.monotonic() < deadline:
        gevent.sleep(POLL_SECONDS)
        if time.monotonic() - beat >= HEARTBEAT_SECONDS:
            heartbeat()
            beat = time.monotonic()
