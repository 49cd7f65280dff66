"""ChatWait's gunicorn worker: accepted connections start at once."""

from __future__ import annotations

import gevent
from gevent import get_hub

from app.server.worker import started_at_once


def test_an_accepted_connection_is_served_before_the_events_already_ready() -> None:
    """The server's spawn, wrapped: the connection's greenlet runs to its first wait at once."""
    order: list[str] = []
    hub = get_hub()

    def serve(name: str) -> None:
        order.append(f"{name} read")
        gevent.sleep(0.01)
        order.append(f"{name} answered")

    spawn = started_at_once(gevent.spawn)
    spawned: list[gevent.Greenlet] = []

    def accept_callback() -> None:
        hub.loop.run_callback(order.append, "upstream read")
        spawned.append(spawn(serve, "request"))
        order.append("spawned")

    hub.loop.run_callback(accept_callback)
    gevent.sleep(0.05)
    assert order == ["request read", "spawned", "upstream read", "request answered"]
    assert spawned[0].successful()
