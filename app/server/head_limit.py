"""The client socket as gunicorn's parser reads it, with a head limit in bytes for each request head.

gunicorn bounds a head by its number of fields times their size (50 x 8 KB: 410 KB), and copies
and scans the whole head read so far after each recv, so large heads cost time quadratic in
their size (docs/performance.md). With a head limit (REQUEST_MAX_HEAD_BYTES, 64 KB by default) a
head over it is refused with 431 as soon as it is read past. Bytes read along with the head (the
start of the body, a pipelined request: one recv's worth) count too, so a head of exactly the
limit always fits.
"""

from __future__ import annotations

from typing import Any

from gunicorn.http.errors import LimitRequestHeaders

RECV_BYTES = 8192  # what gunicorn's reader asks for at a time while it reads a head
START_BYTES = 64  # the start of each head kept: its path says the shape of a refusal


class HeadLimitSocket:
    """Wraps the client socket; `reading_head()` opens a head limit, `done()` closes it."""

    def __init__(self, sock: Any, limit: int) -> None:
        self._sock = sock
        self._limit = limit + RECV_BYTES
        self._used: int | None = None  # None: no head is being read
        self.start = b""  # the first bytes of the head being read (or of the last one)

    def reading_head(self, buffered: bytes = b"") -> None:
        """A head starts: `buffered`, what was read of it already, is its start."""
        self._used = 0
        self.start = buffered[:START_BYTES]

    def done(self) -> None:
        self._used = None

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if self._used is not None:
            if len(self.start) < START_BYTES:
                self.start += data[: START_BYTES - len(self.start)]
            self._used += len(data)
            if self._used > self._limit:
                raise LimitRequestHeaders(f"request head over {self._limit - RECV_BYTES} bytes")
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)  # gettimeout, settimeout, fileno: the socket's own
