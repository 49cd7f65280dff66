"""ChatWait's gunicorn worker: gunicorn's gevent worker that serves with gevent's WSGI server.

gunicorn ships two gevent workers: `gevent` parses each request with gunicorn's own HTTP
parser, `gevent_pywsgi` hands the connection to gevent's `pywsgi` server, which does less per
request on this service's path (one small POST, then a streamed reply). This worker is
`gevent_pywsgi` with what ChatWait needs on top:

- request headers are parsed without the email package (`requestheaders`);
- gunicorn's `keepalive` setting holds as in gunicorn's own worker: a connection that sends
  no request within `keepalive` seconds is closed, and 0 closes each after its response;
- gevent's server logs its errors through the JSON logging (`gunicorn.error`), not stderr.

gunicorn imports this module in its master too, before gevent patches anything: it imports
only what the master already has (gunicorn's gevent worker module imports gevent's pywsgi).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import gevent
from gevent.pywsgi import MAX_REQUEST_LINE
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

from .requestheaders import parse_headers


class ChatWaitHandler(PyWSGIHandler):
    """gunicorn's pywsgi handler with gunicorn's keep-alive rule."""

    def MessageClass(self, rfile: Any, *_: Any) -> Any:  # noqa: N802 (pywsgi's name)
        """The request's headers, parsed without the email package (`requestheaders`)."""
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
    """gevent's WSGI server as gunicorn starts it, knowing the keep-alive time."""

    def __init__(self, *args: Any, keepalive: float, **kwargs: Any) -> None:
        kwargs.setdefault("error_log", logging.getLogger("gunicorn.error"))
        super().__init__(*args, **kwargs)
        self.keepalive = keepalive


class ChatWaitWorker(GeventPyWSGIWorker):
    """gunicorn's `gevent_pywsgi` worker with ChatWait's server and handler."""

    wsgi_handler = ChatWaitHandler

    def init_process(self) -> None:
        self.server_class = functools.partial(ChatWaitServer, keepalive=self.cfg.keepalive)
        super().init_process()
