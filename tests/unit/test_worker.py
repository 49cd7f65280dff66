"""ChatWait's gunicorn worker: what it does once the app is loaded."""

from __future__ import annotations

import gc

from gunicorn.workers.ggevent import GeventPyWSGIWorker

from app.worker import ChatWaitWorker


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
