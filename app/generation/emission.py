"""How a generation's pieces reach its reply and its listener: kept within the reply's bound,
told in the reads they came in, and timed (the first token, the gaps between tokens)."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from ..metrics.catalogue import Metrics
from ..providers.deltas import LOGPROBS, Delta
from .gaps import Gaps
from .opening import Opener
from .outcome import Outcome
from .reply import Reply

log = logging.getLogger("chatwait.relay")


class Listener(Protocol):
    """Receives a generation as it happens (a stream writer; nothing in wait mode)."""

    def answering(self, model: str) -> None: ...

    def chunk(self, content: str | Delta) -> None: ...

    def write(self, pieces: list[str | Delta]) -> None: ...

    def queued(self, ahead: int) -> None: ...

    def continuing(self) -> bool: ...

    def end(self, outcome: Outcome) -> None: ...


class Emission:
    """One generation's pieces on their way out (`emit`), and when its tokens went."""

    def __init__(self, reply: Reply, listener: Listener | None, opener: Opener, metrics: Metrics, provider: str):
        self._reply = reply
        self._listener = listener
        self._opener = opener  # its call names the model that answers; its attempts hear of the first token
        self._metrics = metrics
        self._provider = provider
        self.gaps = Gaps()
        self.started = 0.0
        self.first_token_at: float | None = None

    def emit(self, pieces: list[str | Delta]) -> None:
        """Relay the pieces read together: kept in the reply, then told to the listener (those kept
        before a piece that breaks the reply's bound too). The usual token has a path of its own."""
        if len(pieces) == 1 and type(pieces[0]) is str:
            piece = pieces[0]
            self._reply.add_text(piece)  # type: ignore[arg-type]
            first = self.first_token_at is None
            if self._listener is not None:
                if first:
                    self._listener.answering(self._opener.call.model)
                self._listener.chunk(piece)
            now = time.monotonic()
            self.gaps.tokens_at(now)
            if first:
                self._first_token(now)
            return
        if self._reply.add_texts(pieces):  # a burst of text within the bound
            self._write(pieces)
            return
        kept: list[str | Delta] = []
        try:
            for piece in pieces:
                if type(piece) is not str:
                    piece = self._typed(piece)  # type: ignore[arg-type, assignment]
                    if piece is None:
                        continue
                else:
                    self._reply.add_text(piece)
                kept.append(piece)
        finally:
            if kept:
                self._write(kept)

    def _write(self, pieces: list[str | Delta]) -> None:
        first = self.first_token_at is None
        if self._listener is not None:
            if first:
                self._listener.answering(self._opener.call.model)
            if len(pieces) == 1:  # a typed delta alone in its read: the single chunk's path
                self._listener.chunk(pieces[0])
            else:
                self._listener.write(pieces)
        now = time.monotonic()
        self.gaps.tokens_at(now, len(pieces))
        if first:
            self._first_token(now)

    def _first_token(self, now: float) -> None:
        self.first_token_at = now
        self._opener.attempts.first_token()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("first_token", extra={"ttft_ms": ms(now - self.started)})
        self._metrics.first_token_after(self._opener.call.model, self._provider, now - self.started)

    def _typed(self, delta: Delta) -> str | Delta | None:
        """A typed delta as the call's family takes it: kept, or (a family that carries the text
        only) a log-probability entry's text and nothing of the others, as before."""
        if self._opener.call.typed:
            self._reply.add_delta(delta)
            return delta
        if delta.kind != LOGPROBS:
            return None
        self._reply.add_text(delta.text)
        return delta.text


def ms(seconds: float) -> float:
    """`seconds` in milliseconds, as the log lines give them."""
    return round(seconds * 1000, 1)
