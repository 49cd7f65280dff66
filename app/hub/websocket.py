"""A WebSocket on a client's gevent socket, once gunicorn has parsed its upgrade request.

websockets' sans-I/O protocol does the handshake's checks, the framing, masking, UTF-8 and
close codes, and bounds a message's size across its fragments (MESSAGE_TOO_BIG); this module
only moves bytes: reads under a deadline, writes one at a time under the socket's own write
timeout, and joins a message's fragments.
"""

from __future__ import annotations

import collections
import socket
import time
from collections.abc import Iterable
from typing import Any

import gevent.lock
from gevent.socket import wait_read
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

__all__ = ["TURN", "UPGRADED", "CloseCode", "SocketClosed", "WebSocket", "asks_for_websocket"]

UPGRADED = "chatwait.upgraded"  # set in a WSGI environ whose connection became a WebSocket
TURN = "chatwait.websocket_turn"  # set in the WSGI environ of a request a WebSocket message made
READ_BYTES = 65536


class SocketClosed(Exception):
    """The WebSocket is closed: by either side, a protocol error, or a broken connection."""


def asks_for_websocket(environ: dict[str, Any]) -> bool:
    """Whether a request asks to become a WebSocket (`Upgrade: websocket` on a GET)."""
    return environ.get("REQUEST_METHOD") == "GET" and "websocket" in environ.get("HTTP_UPGRADE", "").lower()


class WebSocket:
    """One server-side WebSocket: `accept`, then `receive` and `send_text` (from any greenlets)."""

    def __init__(self, sock: Any, max_message_bytes: int) -> None:
        self._sock = sock
        self._protocol = ServerProtocol(max_size=max_message_bytes)
        self._sending = gevent.lock.Semaphore()
        self._events: collections.deque[Frame] = collections.deque()  # frames parsed, not yet read
        self._parts: list[bytes] = []  # fragments of the message being received
        self._opcode: Opcode | None = None
        self.heard = time.monotonic()  # when the client last sent anything (a pong included)

    def accept(self, path: str, headers: Iterable[tuple[str, str]]) -> bool:
        """Answer the upgrade request: 101, or the protocol's refusal (False) for one it cannot take.

        The protocol is handed the request's head as gunicorn parsed it (its bounds applied), so
        that it parses the head itself and then reads frames."""
        head = "".join(f"{name}: {value}\r\n" for name, value in headers)
        self._protocol.receive_data(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode("latin-1"))
        requests = [event for event in self._protocol.events_received() if isinstance(event, Request)]
        if not requests:
            self._flush()
            return False
        response = self._protocol.accept(requests[0])
        self._protocol.send_response(response)
        self._flush()
        return response.status_code == 101

    @property
    def open(self) -> bool:
        return self._protocol.state is State.OPEN

    def receive(self, timeout: float) -> str | bytes | None:
        """The next whole message (text as `str`), or None if none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._next_message()
            if message is not None:
                return message
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                return None

    def send_text(self, text: str) -> None:
        """Send one text message (raises SocketClosed when it cannot go)."""
        with self._sending:
            if not self.open:
                raise SocketClosed("the WebSocket is closed")
            self._protocol.send_text(text.encode())
            self._flush()

    def ping(self) -> None:
        with self._sending:
            if self.open:
                self._protocol.send_ping(b"")
                self._flush()

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (nothing if it has started); never raises."""
        try:
            with self._sending:
                if self.open:
                    self._protocol.send_close(code, reason)
                    self._flush()
        except SocketClosed:
            pass

    def _read(self, timeout: float) -> bool:
        """Feed what the socket has to the protocol; False if nothing came within `timeout`."""
        pending = getattr(self._sock, "pending", None)  # TLS: bytes decrypted already
        try:
            if not (pending is not None and pending()):
                wait_read(self._sock.fileno(), timeout=timeout)
        except TimeoutError:
            return False
        try:
            data = self._sock.recv(READ_BYTES)
        except OSError as exc:
            raise SocketClosed(f"the connection broke ({type(exc).__name__})") from None
        self.heard = time.monotonic()
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        with self._sending:  # pongs, and the answer to a close or to a protocol error
            self._flush()
        return True

    def _next_message(self) -> str | bytes | None:
        events = self._events
        events.extend(self._protocol.events_received())
        while events:
            message = self._joined(events.popleft())
            if message is not None:
                return message
        if self._protocol.state is State.CLOSED or self._protocol.close_expected():
            raise SocketClosed(f"closed ({self._protocol.close_code})")
        return None

    def _joined(self, frame: Frame) -> str | bytes | None:
        """A message once its last fragment is in (the protocol bounded their total size)."""
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._opcode, self._parts = frame.opcode, [frame.data]
        elif frame.opcode is Opcode.CONT:
            self._parts.append(frame.data)
        else:
            return None  # ping, pong, close: the protocol answered them
        if not frame.fin:
            return None
        data = b"".join(self._parts)
        self._parts = []
        if self._opcode is not Opcode.TEXT:
            return data
        try:
            return data.decode()
        except UnicodeDecodeError:  # RFC 6455: a text message that is not UTF-8 fails the connection
            self.close(CloseCode.INVALID_DATA, "a text message must be UTF-8")
            raise SocketClosed("a text message was not UTF-8") from None

    def _flush(self) -> None:
        """Write what the protocol has to send (the caller holds `_sending`, or is alone)."""
        for data in self._protocol.data_to_send():
            try:
                if data:
                    self._sock.sendall(data)
                else:  # the protocol's end: no more bytes go this way
                    self._sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                raise SocketClosed(f"the connection broke ({type(exc).__name__})") from None
