"""One upstream socket: its read deadline, its buffer of bytes read but not consumed yet."""

from __future__ import annotations

import contextlib
import ipaddress

import gevent
from gevent import get_hub, getcurrent, socket
from gevent.monkey import get_original

Origin = tuple[str, str, int]
RECV_BYTES = 64 * 1024
# A recv that finds data waiting returns without yielding to the loop: an upstream that sends
# faster than it is relayed would keep the loop to itself. Every YIELD_BYTES read (about 100 tokens), it yields.
YIELD_BYTES = 16 * 1024

# The system call itself: gevent's select yields to every other greenlet even with a zero
# timeout, which would let the whole response set-up run before the upstream request is sent.
_poll_now = get_original("select", "select")


class ConnectionClosed(Exception):
    """The peer closed the connection (recv returned no bytes)."""


class ReadDeadline:
    """Raises socket.timeout in the greenlet reading when a read waits longer than `seconds`.

    A read per token would restart a timer twice per token; instead each read stamps its start
    on the loop's clock (`reading`) and clears it when done (`reader = None`), and the timer,
    when it fires, finds the read it guards older than `seconds`, or starts again for the rest.
    """

    __slots__ = ("_loop", "_timer", "reader", "seconds", "since")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop = get_hub().loop
        self._timer = self._loop.timer(seconds, ref=False)
        self.reader = None  # the greenlet waiting in a read, or None between reads
        self.since = 0.0  # when that read started (the loop's clock)

    def reading(self) -> None:
        """A read may wait from now on."""
        self.reader = getcurrent()
        self.since = self._loop.now()
        if not self._timer.active:
            self._timer.start(self._expire)

    def _expire(self) -> None:
        reader = self.reader
        if reader is None:
            return  # between reads: the next read starts the timer again
        left = self.seconds - (self._loop.now() - self.since)
        if left > 0.001:  # a later read than the one the timer was started for
            self._timer.close()
            self._timer = self._loop.timer(left, ref=False)
            self._timer.start(self._expire)
            return
        self.reader = None
        reader.throw(socket.timeout("timed out"))

    def close(self) -> None:
        self.reader = None
        self._timer.close()


class Connection:
    """One socket to an origin, its read deadline, and the bytes read but not consumed yet."""

    __slots__ = ("_hub", "_readable", "_unyielded", "_wait_first", "buffer", "deadline", "origin", "sock")

    def __init__(self, origin: Origin, sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.buffer = b""
        self.deadline: ReadDeadline | None = None
        self._unyielded = 0
        # A plain socket is read once the kernel says it is readable (TLS may hold decrypted
        # bytes the kernel does not show): a recv tried first would fail on nearly every token.
        plain = origin[0] == "http"
        self._hub = get_hub()
        self._readable = self._hub.loop.io(sock.fileno(), 1) if plain else None
        self._wait_first = plain

    def set_read_timeout(self, seconds: float | None) -> None:
        """Reads from now on fail with socket.timeout after `seconds` without data (None: never)."""
        if self.deadline is not None and self.deadline.seconds != seconds:
            self.deadline.close()
            self.deadline = None
        if seconds is not None and self.deadline is None:
            self.deadline = ReadDeadline(seconds)

    def fill(self) -> None:
        """Read more bytes into the buffer; ConnectionClosed at end of stream."""
        deadline = self.deadline
        if deadline is not None:
            deadline.reading()
        try:
            if self._wait_first:
                self._hub.wait(self._readable)
            data = self.sock.recv(RECV_BYTES)
        finally:
            if deadline is not None:
                deadline.reader = None
        if not data:
            raise ConnectionClosed()
        self._wait_first = self._readable is not None and len(data) < RECV_BYTES  # else more may wait
        self.buffer += data
        self._unyielded += len(data)
        if self._unyielded >= YIELD_BYTES:
            self._unyielded = 0
            gevent.sleep(0)

    def is_dropped(self) -> bool:
        """Whether an idle connection was closed by the peer (or sent something unasked)."""
        try:
            readable, _, _ = _poll_now([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        if self.deadline is not None:
            self.deadline.close()
        if self._readable is not None:
            self._readable.close()
        with contextlib.suppress(OSError):
            self.sock.close()


def open_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """A connected TCP socket. An IP address is connected to directly: gevent resolves every
    name, even a numeric one, on its thread pool, a thread hand-off for nothing."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
