"""A response body read from its connection as the caller iterates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import httpx

from .connection import Connection, ConnectionClosed
from .wire import CHUNKED, MAX_HEAD_BYTES, MalformedResponse, chunk_size, mapped, skip_trailers


class Pool(Protocol):
    """Where a body gives its connection back (the transport)."""

    def give_back(self, connection: Connection, reusable: bool) -> None: ...


class ResponseBody(httpx.SyncByteStream):
    """A response body read from its connection as the caller iterates.

    Read to its end on a keep-alive connection, the connection goes back to the pool;
    closed before that, the connection is closed (which is how a stopped stream tells the
    upstream to stop generating).
    """

    def __init__(
        self,
        pool: Pool,
        connection: Connection,
        request: httpx.Request,
        framing: int | None,
        keep: bool,
        max_chunk: int,
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._request = request
        self._framing = framing  # CHUNKED, a Content-Length, or None for until-close
        self._keep = keep
        self._max_chunk = max_chunk  # a bigger chunk is refused rather than buffered

    def __iter__(self) -> Iterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            if self._framing == CHUNKED:
                yield from self._chunked(connection)
            elif self._framing is None:
                yield from self._until_close(connection)
            else:
                yield from self._sized(connection, self._framing)
        except GeneratorExit:
            raise
        except BaseException as exc:
            self.close()
            raise mapped(exc, self._request, reading=True) from None
        self._finish()

    def _sized(self, connection: Connection, remaining: int) -> Iterator[bytes]:
        while remaining:
            if not connection.buffer:
                connection.fill()
            data = connection.buffer[:remaining]
            connection.buffer = connection.buffer[len(data) :]
            remaining -= len(data)
            yield data

    def _until_close(self, connection: Connection) -> Iterator[bytes]:
        self._keep = False
        while True:
            if connection.buffer:
                yield connection.buffer
                connection.buffer = b""
            try:
                connection.fill()
            except ConnectionClosed:
                return

    def _chunked(self, connection: Connection) -> Iterator[bytes]:
        """Decode chunks; each pass yields every chunk completed by the bytes read so far."""
        buffer = connection.buffer
        position = 0
        while True:
            decoded: list[bytes] = []
            try:
                position, ended = self._complete_chunks(buffer, position, decoded)
            except (ValueError, MalformedResponse):  # what came before it is still delivered
                if decoded:
                    yield b"".join(decoded)
                raise
            if ended:
                connection.buffer = buffer[position:]
                if decoded:
                    yield b"".join(decoded)
                skip_trailers(connection)
                return
            if decoded:
                yield decoded[0] if len(decoded) == 1 else b"".join(decoded)
            if position:
                buffer = buffer[position:]
                position = 0
            if len(buffer) > MAX_HEAD_BYTES and buffer.find(b"\r\n") < 0:
                raise MalformedResponse("Malformed chunk size line.", request=self._request)
            connection.buffer = buffer
            connection.fill()
            buffer = connection.buffer

    def _complete_chunks(self, buffer: bytes, position: int, decoded: list[bytes]) -> tuple[int, bool]:
        """Append each whole chunk of `buffer` from `position` to `decoded`; the position after
        them, and whether the last chunk (size 0) was reached (the position is then its line's)."""
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return position, False
            size = chunk_size(buffer[position:line_end])
            if size == 0:
                return position, True
            if size > self._max_chunk:
                raise MalformedResponse(f"A chunk of {size} bytes is over the limit.", request=self._request)
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                return position, False
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise MalformedResponse("Malformed chunked body.", request=self._request)
            decoded.append(buffer[line_end + 2 : data_end])
            position = data_end + 2

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._pool.give_back(connection, reusable=self._keep and not connection.buffer)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.give_back(connection, reusable=False)
