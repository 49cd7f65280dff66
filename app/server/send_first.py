"""A client socket whose `sendall` makes one `send` first.

A streamed reply is one small write per token. gevent's `sendall` spends a getsockopt system
call, a clock read and three layers of Python on each before the one `send` a small frame
needs; this wrapper makes that `send` (gevent's public one, which honours the socket's
timeout) and hands whatever the kernel did not take to `sendall`. Everything else is the
socket's own. Plain sockets only: gunicorn's TLS sockets keep their own writes.
"""

from __future__ import annotations

from typing import Any


class SendFirst:
    """Wraps a gevent socket; `sendall` tries one `send` before gevent's `sendall`."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def sendall(self, data: bytes, flags: int = 0) -> None:
        sent = self._sock.send(data, flags)
        if sent < len(data):
            self._sock.sendall(memoryview(data)[sent:], flags)

    def send_now(self, data: bytes) -> int:
        """Send what the kernel takes of `data` without waiting (gevent's send with no timeout);
        how many bytes that was."""
        try:
            return self._sock.send(data, 0, timeout=0.0)
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
