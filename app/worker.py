"""ChatWait's gunicorn worker: gunicorn's gevent worker that serves with gevent's WSGI server.

gunicorn ships two gevent workers. `gevent` parses each request with gunicorn's own HTTP
parser; `gevent_pywsgi` hands the connection to gevent's `pywsgi` server. On this service's
path (one small POST, then a streamed reply) the second does less per request: at 100
concurrent streams the first token came about 0.25 ms sooner and each relayed token cost
about 10 µs less CPU (`load/floor.py`). This worker is `gevent_pywsgi` with what ChatWait
needs on top:

- each plain client connection sends directly (`app.directsend`): a streamed reply is one
  small write per token;
- each accepted connection's greenlet starts at once, ahead of the events the loop already
  has ready (`started_at_once`);
- request headers are parsed without the email package (`app.requestheaders`);
- gunicorn's `keepalive` setting holds as it does in gunicorn's own worker: a connection
  that sends no request within `keepalive` seconds is closed, and 0 closes each connection
  after its response;
- gevent's server logs its errors through the JSON logging (`gunicorn.error`), not stderr;
- what start-up built is frozen out of the garbage collector's full collections.

gunicorn imports this module in its master too, before gevent patches anything: it imports
only what the master already has (gunicorn's gevent worker module imports gevent's pywsgi).
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent import Greenlet
from gevent.pywsgi import MAX_REQUEST_LINE
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from .directsend import send_directly
from .requestheaders import parse_headers
from .wakeup import run_first


class ChatWaitHandler(PyWSGIHandler):
    """gunicorn's pywsgi handler on a directly sending socket, with gunicorn's keep-alive rule."""

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        super().__init__(send_directly(sock), address, server, rfile)

    def MessageClass(self, rfile: Any, *_: Any) -> Any:  # noqa: N802 (pywsgi's name)
        """The request's headers, parsed without the email package (`app.requestheaders`)."""
        return parse_headers(rfile)

    def read_requestline(self) -> str:
        """The next request line, or "" (the connection closes) after `keepalive` idle seconds."""
        line = b""
        with gevent.Timeout(self.server.keepalive or None, False):
            line = self.rfile.readline(MAX_REQUEST_LINE)
        return line.decode("latin-1")

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not self.server.keepalive:  # keepalive 0: this response is the connection's last
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)


class ChatWaitServer(PyWSGIServer):
    """gevent's WSGI server as gunicorn starts it, knowing the keep-alive time, and starting
    each accepted connection's greenlet at once."""

    def __init__(self, *args: Any, keepalive: float, **kwargs: Any) -> None:
        kwargs.setdefault("error_log", logging.getLogger("gunicorn.error"))
        super().__init__(*args, **kwargs)
        self.keepalive = keepalive

    def set_spawn(self, spawn: Any) -> None:
        super().set_spawn(spawn)
        if self._spawn is not None:
            self._spawn = started_at_once(self._spawn)


def started_at_once(spawn: Callable[..., Greenlet]) -> Callable[..., Greenlet]:
    """`spawn`, and the new greenlet runs at once until it first waits (`run_first`).

    The server accepts in a callback of the hub, and `spawn` queues the connection's start
    behind every event the loop has ready: on a busy worker, several upstream reads to relay
    before the new request is even read (at 100 streams, the first token came about 0.05 ms
    sooner without that wait).
    """

    def spawn_and_run(*args: Any) -> Greenlet:
        greenlet = spawn(*args)
        run_first(greenlet)
        return greenlet

    return spawn_and_run


class ChatWaitWorker(GeventPyWSGIWorker):
    """gunicorn's `gevent_pywsgi` worker with ChatWait's server and handler."""

    wsgi_handler = ChatWaitHandler

    def init_process(self) -> None:
        self.server_class = functools.partial(ChatWaitServer, keepalive=self.cfg.keepalive)
        super().init_process()

    def load_wsgi(self) -> None:
        """Load the app, then take what start-up built out of the garbage collector's way.

        The app, its libraries and the tokenizer leave about 125,000 objects that live as long
        as the process. Each full collection walked them all: 70-80 ms during which no stream
        moved, which showed as the benchmark's first-token p99 of 75-95 ms. Frozen (after one
        collection, so start-up's garbage is not kept), full collections walk only what
        requests create.
        """
        super().load_wsgi()
        freeze_start_up()


def freeze_start_up() -> None:
    """Collect start-up's garbage, then move every object alive now to the permanent generation."""
    gc.collect()
    gc.freeze()
