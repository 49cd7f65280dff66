"""gunicorn's HTTP/1.1 request parser, with chunk-size lines that must end in CRLF at once.

gunicorn looks for the CRLF that ends a chunk-size line and, while none has come, reads on:
a body whose lines end in a bare LF (`5\\n...`) then waits, unanswered, until the body's
deadline. RFC 9112 allows only CRLF there, so a bare LF refuses the body as soon as it is read.
"""

from __future__ import annotations

from typing import Any

from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.errors import InvalidChunkSize
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser


class StrictChunkedReader(ChunkedReader):
    """gunicorn's chunked reader, refusing a bare LF in a size line or the trailers before
    it reads further (gunicorn reads on until a CRLF that a waiting client never sends)."""

    def read_into(self, unreader: Any, buf: bytearray) -> None:
        if buf.count(b"\n") != buf.count(b"\r\n"):
            raise InvalidChunkSize(b"bare LF")
        super().read_into(unreader, buf)


class StrictRequest(Request):
    """A request whose chunked body is read by StrictChunkedReader."""

    def set_body_reader(self) -> None:
        super().set_body_reader()
        if isinstance(self.body.reader, ChunkedReader):
            self.body = Body(StrictChunkedReader(self, self.unreader))


class StrictRequestParser(RequestParser):
    """gunicorn's request parser, making StrictRequests."""

    mesg_class = StrictRequest
