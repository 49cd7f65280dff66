"""The frame of a streamed reply read from an HTTP model server, whichever API's events it
carries: the body's `data:` payloads line by line (one over UPSTREAM_MAX_LINE_BYTES refused
before it is buffered further), a compressed body refused, the transport's failures as catalogue
errors, a reply that ends without its ending as an error, and at most MAX_SKIPPED_CHUNKS
malformed events skipped in one reply. Each API's reader (`openai.stream`, `anthropic.stream`)
turns one read's payloads into text pieces and typed deltas in `_read`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import gevent
import httpx

from ..base import ENDED_EARLY, Attempt, UpstreamError
from ..deltas import Delta
from ..http1 import MalformedResponse

log = logging.getLogger("chatwait.upstream")

DRAIN_SECONDS = 0.2
MAX_SKIPPED_CHUNKS = 3  # malformed chunks skipped in one reply before it counts as broken
MAX_FINISH_REASON_CHARS = 64


class HttpAttempt(Attempt):
    """One streamed reply read from the upstream HTTP response."""

    chunks = "chunks"  # what a well-formed piece of the reply is, as errors say it
    ending = "its ending"  # what a complete reply ends with, as errors say it

    def __init__(self, response: Any, idle_timeout: float, max_line: int, request_id: str | None) -> None:
        self._response = response
        self._idle_timeout = idle_timeout
        self._max_line = max_line
        self.upstream_request_id = request_id
        self._body: Iterator[bytes] = iter(())
        self._skipped = 0  # malformed chunks skipped so far
        self._ended = False  # the reply's end marker was read

    def __iter__(self) -> Iterator[str | Delta]:
        return itertools.chain.from_iterable(self.reads())

    def reads(self) -> Iterator[list[str | Delta]]:
        """The reply's pieces, a list for each read of the body (`_read`), and its failures as
        catalogue errors: a reply that ends without its ending, or does not end whole, raises."""
        encoding = self._response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", ""):
            raise self._error("upstream_bad_response", "The model provider compressed its reply, though asked not to.")
        try:
            yield from self._batches()
        except MalformedResponse:
            raise self._error("upstream_bad_response", "The model provider's reply breaks HTTP/1.1 framing.") from None
        except httpx.TimeoutException:
            raise self._error(
                "upstream_timeout", f"No data from the model provider for {self._idle_timeout:g} s."
            ) from None
        except httpx.TransportError:
            raise self._error("upstream_interrupted", "The connection to the model provider broke mid-reply.") from None
        if self.finish_reason is None:  # e.g. llama.cpp ending a request another one preempted
            detail = f"The model provider ended the reply without {self.ending}."
            raise self._error("upstream_interrupted", detail, upstream_ended=ENDED_EARLY)
        self._check_whole()

    def _batches(self) -> Iterator[list[str | Delta]]:
        """The pieces of each read's payloads, until the reply's end (`_ended`), after which the rest
        of the body is drained. Pieces read before a failure are handed on before it is raised."""
        for payloads in self._reads():
            found: list[str | Delta] = []
            try:
                self._read(payloads, found)
            except Exception:
                if found:
                    yield found
                raise
            if found:
                yield found
            if self._ended:
                self._drain()
                return

    def _read(self, payloads: list[bytes], found: list[str | Delta]) -> None:
        """Add the text pieces and typed deltas of one read's payloads to `found`; at the reply's
        end marker, set `_ended` and stop."""
        raise NotImplementedError

    def _check_whole(self) -> None:
        """Raise the UpstreamError of a reply that ended but is not whole (none by default)."""

    def _reads(self) -> Iterator[list[bytes]]:
        """The `data:` payloads of the body's lines, a list for each read of the transport's stream
        itself (no compression to decode). Lines end with LF or CRLF (the CR is left to `strip`);
        one over the line limit is refused, after the lines before it; a final newline ends a last
        line the body left unterminated. Blank lines, comments, `event:` and `id:` are skipped."""
        self._body = blocks = itertools.chain(self._response.stream, (b"\n",))
        max_line = self._max_line
        rest = b""
        for block in blocks:
            if rest:
                block = rest + block
            *complete, rest = block.split(b"\n")
            if complete and max(map(len, complete)) > max_line:
                yield _payloads(itertools.takewhile(lambda line: len(line) <= max_line, complete))
                raise self._too_long()
            if complete:
                yield [line[5:].strip() for line in complete if line[:5] == b"data:"]  # _payloads, inlined
            if len(rest) > max_line:
                raise self._too_long()

    def _drain(self) -> None:
        """Read the end of the body after the reply's end so the connection goes back to the pool.

        A server that keeps the body open gets DRAIN_SECONDS, one that breaks the end of its body
        is forgiven: the reply is complete, only the connection is not reused.
        """
        with gevent.Timeout(DRAIN_SECONDS, False):
            try:
                for _ in self._body:
                    pass
            except (httpx.TransportError, UpstreamError):
                pass

    def _skip(self) -> None:
        """A malformed chunk is skipped (one garbled line need not lose a reply); more than
        MAX_SKIPPED_CHUNKS in a reply end it: the server is broken."""
        self._skipped += 1
        if self._skipped > MAX_SKIPPED_CHUNKS:
            detail = f"More than {MAX_SKIPPED_CHUNKS} streamed chunks were not {self.chunks}."
            raise self._error("upstream_bad_response", detail)
        log.warning(
            "upstream_chunk_skipped", extra={"skipped": self._skipped, "upstream_request_id": self.upstream_request_id}
        )

    def _too_long(self) -> UpstreamError:
        return self._error("upstream_bad_response", f"A line of the reply is over {self._max_line} bytes.")

    def _error(self, code: str, detail: str, **log_fields: str) -> UpstreamError:
        return UpstreamError(code, detail, upstream_request_id=self.upstream_request_id, log_fields=log_fields)

    def close(self) -> None:
        """Close the upstream HTTP response; an unread body closes its connection."""
        self._response.close()


def _payloads(lines: Iterable[bytes]) -> list[bytes]:
    return [line[5:].strip() for line in lines if line[:5] == b"data:"]


def count(value: Any) -> bool:
    """Whether `value` is a plausible token count (not a bool, a fraction or a negative)."""
    return type(value) is int and 0 <= value < 1_000_000_000
