"""ChatWait's gunicorn worker: gunicorn's gevent worker, with its own HTTP parser, under deadlines.

gunicorn's `gevent` worker parses each request with gunicorn's HTTP parser, which is
maintained and strict where leniency desyncs a connection (Content-Length with chunked,
repeated or malformed Content-Length, bad chunk framing) and enforces `limit_request_line`,
`limit_request_fields` and `limit_request_field_size`. On top of it this worker:

- serves each connection under read and write deadlines, and answers the parser's refusals in
  the catalogue's JSON (`connection`);
- bounds the reading of each request body by a deadline (`request_body`);
- sends each small write with one `send` first on plain connections (`send_first`);
- on SIGTERM, stops accepting at once (new generations on open connections get 503
  service_restarting), lets generations finish, then ends those still running with a
  terminal event before it exits (`shutdown`).

gunicorn imports this module in its master too, before gevent patches anything: it imports
only gunicorn, gevent and the app's plain-Python base pieces (config, errors, ids).
"""

from __future__ import annotations

import functools
import signal
from typing import Any

import gevent
import gevent.event
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

from .client_writer import with_client_writer
from .connection import ClientConnection
from .master import running_settings
from .request_body import DeadlineBody
from .send_first import SendFirst
from .shutdown import drain, lifecycle_of

HEARTBEAT_SECONDS = 1.0  # how often the worker tells the master it lives


class SettledConfig:
    """gunicorn's configuration as a worker reads it: each setting looked up once, then a plain
    attribute. gunicorn's Config resolves every read through two calls, and its parser and WSGI
    layer read many a request; a worker's settings do not change (a reload forks new ones)."""

    def __init__(self, cfg: Any) -> None:
        self._cfg = cfg

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cfg, name)
        setattr(self, name, value)
        return value


class ChatWaitWorker(GeventWorker):
    """gunicorn's `gevent` worker with deadlines, JSON refusals and a graceful stop that ends streams."""

    read_timeout = 10.0
    write_timeout = 30.0
    max_head_bytes = 65536

    def init_process(self) -> None:
        self.cfg = SettledConfig(self.cfg)
        settings = running_settings()  # validated in the master, inherited through fork
        self.read_timeout = settings.requests.request_read_timeout_seconds
        self.write_timeout = settings.requests.client_write_timeout_seconds
        self.max_head_bytes = settings.requests.request_max_head_bytes
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # Flask's place for WSGI middleware: gunicorn still calls the app itself (its lifecycle).
        self.wsgi.wsgi_app = with_client_writer(self.wsgi.wsgi_app)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        ClientConnection(self, listener, client, addr).serve()

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        req.body = DeadlineBody(req.body, self.read_timeout, req.force_close)
        return super().handle_request(listener_name, req, sock if self.cfg.is_ssl else SendFirst(sock), addr)

    def init_signals(self) -> None:
        """gunicorn's handlers, and SIGTERM through the loop: the stop starts at once, not at
        the next heartbeat (a Python handler waits until the loop next runs Python code)."""
        super().init_signals()
        self._stopping = gevent.event.Event()
        gevent.signal_handler(signal.SIGTERM, self._stop)

    def _stop(self) -> None:
        self.alive = False
        self._stopping.set()

    def run(self) -> None:
        servers = [self._serve(sock) for sock in self.sockets]
        self.notify()
        beats = gevent.get_hub().loop.timer(HEARTBEAT_SECONDS, HEARTBEAT_SECONDS)
        beats.start(self._beat)
        self._stopping.wait()
        beats.close()
        drain(servers, lifecycle_of(self.wsgi), self.cfg.graceful_timeout, self.notify)

    def _beat(self) -> None:
        """Tell the master the worker lives, from a repeating timer of the loop (no greenlet woken,
        no timeout raised): gunicorn's notify, whose exit when the master is gone (or gunicorn's
        own end of the worker, `alive`) stops the worker gracefully instead."""
        try:
            self.notify()
        except SystemExit:
            self._stop()
        if not self.alive:
            self._stop()

    def _serve(self, sock: Any) -> StreamServer:
        """Start accepting on one listening socket (as gunicorn's gevent worker does)."""
        sock.setblocking(1)
        tls = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        server = StreamServer(
            sock, handle=functools.partial(self.handle, sock), spawn=Pool(self.worker_connections), **tls
        )
        if self.cfg.workers > 1:
            server.max_accept = 1
        server.start()
        return server
