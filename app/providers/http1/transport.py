"""The transport: a keep-alive pool per origin, and each request's exchange on a connection.

It checks that an idle connection is still open before reusing it. When concurrent requests
to an origin have used up its idle connections, it opens one spare in the background, so the
next concurrent request does not wait for a TCP (and TLS) handshake before its request can
leave; a client that sends one request at a time keeps its one connection and gets no spare.
"""

from __future__ import annotations

import ssl
from typing import Any

import gevent
import httpx
from gevent import socket

from .body import ResponseBody
from .connection import Connection, ConnectionClosed, Origin, open_socket
from .framing import framing, keep_alive, mapped, read_head, serialize

DEFAULT_PORTS = {"http": 80, "https": 443}


class Http1Transport(httpx.BaseTransport):
    """HTTP/1.1 over plain or TLS sockets with a keep-alive pool (see the package docstring)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_per_origin: int = 256,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle_per_origin
        self._idle: dict[Origin, list[Connection]] = {}
        self._busy: dict[Origin, int] = {}  # connections handed to a request and not back yet
        self._opening_spare: set[Origin] = set()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Unsupported URL scheme {scheme!r}.", request=request)
        origin = (scheme, url.host, url.port or DEFAULT_PORTS[scheme])
        message = serialize(request)
        connection = self._checkout(origin) or self._connect(origin, request, timeouts)
        busy = self._busy[origin] = self._busy.get(origin, 0) + 1
        response = self._exchange(connection, request, message, timeouts)
        if busy > 1 and not self._idle.get(origin):  # opened once this request is on its way
            self._open_spare(origin, timeouts.get("connect"))
        return response

    def _exchange(
        self, connection: Connection, request: httpx.Request, message: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        """Send the request and read the response head; the body streams from the result."""
        sock = connection.sock
        try:
            sock.settimeout(timeouts.get("write"))
            sock.sendall(message)
            sock.settimeout(None)
            connection.set_read_timeout(timeouts.get("read"))
            status, reason, headers = read_head(connection)
            body_framing = framing(request.method, status, headers)
        except ConnectionClosed:
            self.give_back(connection, reusable=False)
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except BaseException as exc:
            self.give_back(connection, reusable=False)
            raise mapped(exc, request, reading=True) from None
        body = ResponseBody(self, connection, request, body_framing, keep_alive(headers))
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    def _checkout(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.is_dropped():
                connection.close()
                continue
            return connection
        return None

    def give_back(self, connection: Connection, reusable: bool) -> None:
        """A request is done with its connection: keep it for the next request if its response
        was read to the end on a keep-alive connection, else close it."""
        self._busy[connection.origin] -= 1
        if reusable:
            self._keep_idle(connection)
        else:
            connection.close()

    def _keep_idle(self, connection: Connection) -> None:
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) < self._max_idle and not self._closed:
            idle.append(connection)
        else:
            connection.close()

    def _open_spare(self, origin: Origin, connect_timeout: float | None) -> None:
        """Open one idle connection to `origin` in the background (one at a time per origin).
        A failure is left to the next request that needs a connection, which reports it."""
        if origin in self._opening_spare:
            return
        self._opening_spare.add(origin)

        def open_spare() -> None:
            try:
                connection = self._open(origin, connect_timeout)
            except Exception:
                return
            finally:
                self._opening_spare.discard(origin)
            self._keep_idle(connection)

        gevent.spawn(open_spare)

    def _connect(self, origin: Origin, request: httpx.Request, timeouts: dict[str, Any]) -> Connection:
        try:
            return self._open(origin, timeouts.get("connect"))
        except BaseException as exc:
            raise mapped(exc, request, reading=False) from None

    def _open(self, origin: Origin, connect_timeout: float | None) -> Connection:
        scheme, host, port = origin
        sock = open_socket(host, port, connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._tls_context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return Connection(origin, sock)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
