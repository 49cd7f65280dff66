"""ChatWait's gunicorn worker: what it does once the app is loaded."""

from __future__ import annotations

import gc

import gevent
from gevent import get_hub
from gunicorn.workers.ggevent import GeventPyWSGIWorker

from app.worker import ChatWaitWorker, started_at_once


def test_loading_the_app_freezes_what_start_up_built(monkeypatch) -> None:
    built: list[object] = []
    monkeypatch.setattr(GeventPyWSGIWorker, "load_wsgi", lambda self: built.append([{"start-up": object()}]))
    worker = object.__new__(ChatWaitWorker)  # no gunicorn arbiter: only load_wsgi is exercised
    gc.unfreeze()
    try:
        worker.load_wsgi()
        assert built and gc.get_freeze_count() > 0
        assert not any(obj is built[0] for obj in gc.get_objects())  # frozen objects are not collected over
    finally:
        gc.unfreeze()


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
