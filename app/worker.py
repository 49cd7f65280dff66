"""ChatWait's gunicorn worker: gunicorn's gevent worker with a cheaper write to the client.

A streamed reply is one small write per token. gevent's `socket.sendall` spends about 2 µs of
CPU on each (a getsockopt system call to size its send loop, three layers of Python) before
the one `send` that a small frame needs. The client sockets of this worker try that `send`
first and fall back to gevent's `sendall` for whatever the kernel did not take, which keeps
its blocking and timeout behaviour. TLS sockets are left as they are.

gunicorn imports this module in its master too, before gevent patches anything: it imports
only what the master already has.
"""

from __future__ import annotations

from gevent import socket as gevent_socket
from gunicorn.workers.ggevent import GeventWorker


class ClientSocket(gevent_socket.socket):
    """A gevent socket whose `sendall` makes one direct `send` first."""

    __slots__ = ()

    def sendall(self, data: bytes, flags: int = 0) -> None:
        try:
            sent = self._sock.send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            super().sendall(memoryview(data)[sent:], flags)


class ChatWaitWorker(GeventWorker):
    """gunicorn's gevent worker, serving each plain connection through a ClientSocket."""

    def handle(self, listener, client, addr) -> None:
        if type(client) is gevent_socket.socket:
            client.__class__ = ClientSocket  # same layout: only the methods change
        super().handle(listener, client, addr)
