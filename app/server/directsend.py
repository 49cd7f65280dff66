"""Plain gevent sockets whose `sendall` makes one direct `send` first.

A streamed reply is one small write per token, and an upstream request is one small write
too. gevent's `socket.sendall` makes a getsockopt system call to size its send loop and goes
through three layers of Python before the one `send` that a small message needs. A
DirectSendSocket tries that `send` first and falls back to gevent's `sendall` for whatever
the kernel did not take, which keeps its blocking and timeout behaviour. ChatWait's worker
uses it for client connections, the HTTP/1.1 transport for plain upstream ones; TLS sockets
are left as they are.

gunicorn's master imports this module (through the worker class) before gevent patches
anything: it imports only gevent's socket module, which the master already has.
"""

from __future__ import annotations

from typing import Any

from gevent import socket as gevent_socket


class DirectSendSocket(gevent_socket.socket):
    """A gevent socket whose `sendall` makes one direct `send` first."""

    __slots__ = ()

    def sendall(self, data: bytes, flags: int = 0) -> None:
        try:
            sent = self._sock.send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            super().sendall(memoryview(data)[sent:], flags)


def send_directly(sock: Any) -> Any:
    """`sock`, sending directly from now on if it is a plain gevent socket (same object)."""
    if type(sock) is gevent_socket.socket:
        sock.__class__ = DirectSendSocket  # same layout: only the methods change
    return sock

