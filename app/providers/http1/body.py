"""A response body read from its connection as the caller iterates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import httpx

from .connection import Connection, ConnectionClosed
from .framing import CHUNK_SIZES, CHUNKED, MAX_HEAD_BYTES, MalformedResponse, chunk_size, mapped, skip_trailers


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
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._request = request
        self._framing = framing  # CHUNKED, a Content-Length, or None for until-close
        self._keep = keep

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
        """Decode chunks as their bytes arrive: each pass yields all the chunk data the bytes
        read so far hold, whether or not a chunk is complete. A chunk's size is not bounded
        (the reader bounds the lines in it); a size line is."""
        left: int | None = None  # within a chunk: its data and CRLF still to come; None: at a size line
        while True:
            buffer = connection.buffer
            if left is None and (whole := _one_whole_chunk(buffer)) is not None:
                connection.buffer = b""
                yield whole
                connection.fill()
                continue
            decoded: list[bytes] = []
            try:
                position, left, ended = self._decode(buffer, left, decoded)
            except (ValueError, MalformedResponse):  # what came before it is still delivered
                if decoded:
                    yield b"".join(decoded)
                raise
            connection.buffer = buffer[position:] if position else buffer
            if decoded:
                yield decoded[0] if len(decoded) == 1 else b"".join(decoded)
            if ended:
                skip_trailers(connection)
                return
            if left is None and len(connection.buffer) > MAX_HEAD_BYTES:
                raise MalformedResponse("Malformed chunk size line.", request=self._request)
            connection.fill()

    def _decode(self, buffer: bytes, left: int | None, decoded: list[bytes]) -> tuple[int, int | None, bool]:
        """Append the chunk data in `buffer` to `decoded`. Returns where decoding stopped, what
        is left of the current chunk there (None: at a size line), and whether the last chunk
        (size 0) was reached (decoding stops at its size line, for `skip_trailers`)."""
        position, length, sizes = 0, len(buffer), CHUNK_SIZES
        while True:
            if left is None:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return position, None, False
                line = buffer[position:line_end]
                size = sizes.get(line)
                if size is None:
                    size = chunk_size(line)
                if size == 0:
                    return position, None, True
                start = line_end + 2
                end = start + size
                if end + 2 <= length:  # the whole chunk is here (a burst's usual case)
                    decoded.append(buffer[start:end])
                    if buffer[end : end + 2] != b"\r\n":
                        raise MalformedResponse("Malformed chunked body.", request=self._request)
                    position = end + 2
                    continue
                position, left = start, size + 2  # the data, then its CRLF
            data = min(left - 2, len(buffer) - position)
            if data > 0:
                decoded.append(buffer[position : position + data])
                position += data
                left -= data
            if left > 2:
                return position, left, False
            ending = buffer[position : position + left]
            if ending != b"\r\n"[2 - left :][: len(ending)]:
                raise MalformedResponse("Malformed chunked body.", request=self._request)
            position += len(ending)
            left -= len(ending)
            if left:
                return position, left, False
            left = None

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._pool.give_back(connection, reusable=self._keep and not connection.buffer)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.give_back(connection, reusable=False)


def _one_whole_chunk(buffer: bytes) -> bytes | None:
    """The data of `buffer` when it holds exactly one whole chunk of a size seen before (the
    usual read while streaming: one token's event); None otherwise (`_decode` then decodes it)."""
    line_end = buffer.find(b"\r\n")
    size = CHUNK_SIZES.get(buffer[:line_end]) if line_end > 0 else None
    if size and len(buffer) == line_end + size + 4 and buffer.endswith(b"\r\n"):
        return buffer[line_end + 2 : line_end + 2 + size]
    return None
