"""The producer side of a stream: a generation runs in its own greenlet and writes SSE events.

`start` spawns the producer (a Relay whose listener is a StreamWriter) and runs it at once,
so that its upstream request leaves before this request's response is set up; `stop` cancels
it. The writer turns the generation into the `stream`, `chunk` and `done`/`error` events.
"""

from __future__ import annotations

import dataclasses
import logging

import gevent

from ..accounts.account import Account
from ..config import Settings
from ..errors import ApiError
from ..generation.outcome import Outcome
from ..generation.relay import Relay
from ..generation.reply import Prefix
from ..hub.scheduling import run_first
from ..metrics.catalogue import Metrics
from ..providers.base import Provider
from ..providers.call import Usage
from ..providers.deltas import LOGPROBS, Delta
from ..traces import event
from .stream import Stream

log = logging.getLogger("chatwait.producer")

STOP_WAIT_SECONDS = 2.0
_TEXT_ONLY = {str}


def start(stream: Stream, provider: Provider, settings: Settings, account: Account, metrics: Metrics) -> None:
    """Generate the `account`'s call into `stream` in a new producer greenlet, which runs first. A
    stream that holds chunks already (taken over from a worker that died) is continued from its text."""
    call = account.call
    fallbacks = call.fallbacks if call.fallbacks is not None else settings.fallbacks_of(call.model)
    wider = settings.fallbacks_of(call.model, too_long=True)  # another model may answer either way
    writer = StreamWriter(stream, hold_priming=bool(fallbacks or wider) and stream.writer.model_first)
    so_far = stream.result() if stream.chunks else None
    prefix = None if so_far is None else Prefix(so_far[0], so_far[2], stream.chunks)
    relay = Relay(provider, settings, account, writer, metrics=metrics, prefix=prefix)
    producer = stream.producer = gevent.spawn(relay.run)
    producer.link_exception(lambda _: writer.abort())
    run_first(producer)  # it sends its upstream request first; the response is written meanwhile


def stop(stream: Stream, wait_seconds: float = STOP_WAIT_SECONDS) -> bool:
    """Cancel the stream's generation and wait for its producer to end; False if it ended
    otherwise (it had ended, or a producer already woken ended it before the stop landed)."""
    log.info("stop_requested", extra={"last_event_id": stream.last_event_id, "finished": stream.finished})
    event("chatwait.cancel", {"chatwait.stream_id": stream.stream_id, "chatwait.last_event_id": stream.last_event_id})
    if not stream.cancel():
        return False
    if stream.producer is not None:
        stream.producer.join(timeout=wait_seconds)
    return stream.ending in (None, "cancelled")  # None: still ending (a slow producer); the stop wins


class StreamWriter:
    """The relay's listener in streaming mode; writes the priming event at once, or with
    `hold_priming` once the model that answers is known (a wire whose clients read the model
    there, and a call a fallback model may answer).

    Chunk sequences equal their event ids (1..n); the terminal event has id n+1 and tells
    the last chunk sequence and the total content length so a client can check it has all.
    """

    def __init__(self, stream: Stream, hold_priming: bool = False) -> None:
        self.stream = stream
        self.content_length = 0
        self._first = True  # until the first chunk
        self._debug = log.isEnabledFor(logging.DEBUG)
        self._primed = bool(stream.written)
        if stream.written:  # taken over: its events so far came from Redis
            found = stream.result()
            self.content_length = 0 if found is None else len(found[0])
        elif not hold_priming:
            self.answering(stream.model)

    def answering(self, model: str) -> None:
        """The reply begins, from `model`: its priming event, naming it, if not written yet."""
        if not self._primed:
            self._primed = True
            self.stream.answered_by(model)
            self.stream.append(self.stream.writer.priming())

    def chunk(self, content: str | Delta) -> None:
        """Append one `chunk` event (text, or a typed delta). The first one is written to the
        clients before this returns: the producer yields to them once, before its own bookkeeping."""
        if not self._primed:
            self.answering(self.stream.model)
        if type(content) is str:
            self.content_length += len(content)
            self.stream.append_chunk(content)
        else:
            if content.kind == LOGPROBS:  # type: ignore[union-attr]
                self.content_length += len(content.text)  # type: ignore[union-attr]
            self.stream.append_delta(content)  # type: ignore[arg-type]
        if self._first:
            self._first = False
            gevent.sleep(0)
        if self._debug:
            self._logged([content])

    def write(self, pieces: list[str | Delta]) -> None:
        """Append a `chunk` event for each of the pieces read together, as `chunk` does one."""
        if not self._primed:
            self.answering(self.stream.model)
        self.stream.append_pieces(pieces)
        self.content_length += _content_length(pieces)
        if self._first:
            self._first = False
            gevent.sleep(0)
        if self._debug:
            self._logged(pieces)

    def _logged(self, pieces: list[str | Delta]) -> None:
        """The DEBUG line of each chunk just appended."""
        first = self.stream.chunks - len(pieces) + 1
        for sequence, piece in enumerate(pieces, first):
            size = len(piece) if type(piece) is str else piece.size  # type: ignore[union-attr]
            log.debug("chunk_sent", extra={"sequence": sequence, "chars": size})

    def queued(self, ahead: int) -> None:
        """Tell the stream's followers how many replies are ahead of this one (0: it starts)."""
        self.stream.set_notice(self.stream.writer.queued(ahead) if ahead else None)

    def continuing(self) -> bool:
        """A continuation is about to be sent upstream: whether the stream's allowance allows it
        (StreamCancelled when another worker has taken the stream over)."""
        return self.stream.continuing()

    def abort(self) -> None:
        """End the stream with internal_error if its producer died without ending it."""
        if not self.stream.ended:
            error = ApiError("internal_error", "The generation stopped unexpectedly.")
            chunks = self.stream.chunks
            usage = Usage(0, 0, estimated=True)
            self.end(Outcome(text="", chunks=chunks, usage=usage, duration_ms=0.0, ttft_ms=None, error=error))

    def end(self, outcome: Outcome) -> None:
        """Append the one terminal event: `done`, or `error` with the catalogue fields (once the
        stream's API has recorded how it ended: `Retention.ended`)."""
        self.answering(outcome.model or self.stream.model)
        if self.stream.retention.ended is not None:
            self.stream.retention.ended(self.stream, outcome)
        if outcome.chunks != self.stream.chunks:  # a reply taken over: its reader has every chunk
            outcome = dataclasses.replace(outcome, delivered=self.stream.chunks)
        frame = self.stream.writer.terminal(self.stream.chunks, self.content_length, outcome)
        self.stream.ending = outcome.error.error_code if outcome.error is not None else outcome.finish_reason
        self.stream.outcome = outcome
        self.stream.append(frame, final=True)


def _content_length(pieces: list[str | Delta]) -> int:
    """The characters of text in `pieces` (a log-probability entry's text is text)."""
    if set(map(type, pieces)) == _TEXT_ONLY:
        return sum(map(len, pieces))  # type: ignore[arg-type]
    length = 0
    for piece in pieces:
        if type(piece) is str:
            length += len(piece)
        elif piece.kind == LOGPROBS:  # type: ignore[union-attr]
            length += len(piece.text)  # type: ignore[union-attr]
    return length
