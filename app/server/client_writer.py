"""The client writer the streams' producers use (app.streaming.direct): body bytes of a streamed
response sent straight to its client, framed as gunicorn frames them, as far as the socket takes
them at once.

gunicorn writes what the app yields, each piece through its response's `write` (its chunked
framing, its byte count). A stream's producer writing a chunk to a follower that has caught up
frames and counts it the same way, on the same socket, between two of gunicorn's own writes
(the follower is parked, so gunicorn is not writing). Plain connections only: a TLS socket's
writes stay with gunicorn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.http.wsgi import Response
from gunicorn.workers.base_async import ALREADY_HANDLED

from ..hub.websocket import UPGRADED
from ..streaming.direct import CLIENT_WRITER
from .send_first import SendFirst


class ClientWriter:
    """Writes body bytes of one gunicorn response to its client (see the module docstring)."""

    __slots__ = ("_response", "_sock")

    def __init__(self, response: Response, sock: SendFirst) -> None:
        self._response = response
        self._sock = sock

    def write_now(self, data: bytes) -> bytes:
        response = self._response
        framed = b"%X\r\n%s\r\n" % (len(data), data) if response.chunked else data
        response.sent += len(data)
        sent = self._sock.send_now(framed)
        return framed[sent:] if sent < len(framed) else b""

    def write_rest(self, rest: bytes) -> None:
        self._sock.sendall(rest)


def with_client_writer(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The WSGI app, with each request on a plain connection given its ClientWriter in the environ;
    a request whose connection became a WebSocket (UPGRADED) is told to gunicorn as handled."""

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        response = getattr(start_response, "__self__", None)  # gunicorn's start_response is its response's
        sock = environ.get("gunicorn.socket")
        if isinstance(response, Response) and isinstance(sock, SendFirst):
            environ[CLIENT_WRITER] = ClientWriter(response, sock)
        answer = app(environ, start_response)
        if environ.get(UPGRADED):
            getattr(answer, "close", lambda: None)()
            return ALREADY_HANDLED  # type: ignore[no-any-return]
        return answer

    return serve
