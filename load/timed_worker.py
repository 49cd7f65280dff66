"""ChatWait's worker, timing each token inside the relay and each streaming request's steps up
to its first token (see relay_latency.py).

Kept apart from the runner: gunicorn imports the worker class in its master process too,
which must not be monkey-patched.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

from greenlet import getcurrent

from app.worker import ChatWaitHandler, ChatWaitWorker
from load.stats import pct

QUANTILES = (50, 90, 99, 99.9)
# The steps of a streaming request up to its first token, in the order they happen.
FIRST_TOKEN_STEPS = (
    "request_read",  # the server read the request line
    "app_called",  # the server parsed the request and calls the Flask app
    "body_read",  # Flask's request context, the hooks, routing, the JSON body
    "validated",  # marshmallow
    "prompt_counted",  # the ChatCall and its prompt tokens
    "relay_created",  # the stream and its writer
    "upstream_request_built",  # the producer started, the provider built the request
    "upstream_sending",  # a connection checked out
    "upstream_answered",  # sent; the upstream's response head read (the response set-up meanwhile)
    "first_piece",  # the first piece parsed
    "first_written",  # its frame written to the client, with the response head
)
STEP_PAIRS = tuple(itertools.pairwise(FIRST_TOKEN_STEPS))


class TimedWorker(ChatWaitWorker):
    """ChatWait's worker, timing each token from its upstream read to its client write, and
    each streaming request's steps up to its first token (FIRST_TOKEN_STEPS).

    Writes what it measured to $RELAY_LATENCY_OUT as JSON on SIGUSR2, and starts afresh.
    """

    def load_wsgi(self) -> None:
        super().load_wsgi()
        from app import chat
        from app.providers import http1
        from app.relay import Relay
        from app.writer import StreamWriter

        samples: dict[str, list[float]] = {
            "read_to_write": [],
            "read_to_append": [],
            "append_to_write": [],
            "upstream_gap": [],
        }
        steps: dict[tuple[str, str], list[float]] = {pair: [] for pair in STEP_PAIRS}
        clock = time.perf_counter
        relay_init, relay_run = Relay.__init__, Relay.run
        fill, chunk = http1.Connection.fill, StreamWriter.chunk
        read_requestline, write = ChatWaitHandler.read_requestline, ChatWaitHandler.write

        def mark(step: str) -> None:
            """Time a step of the request this greenlet serves (or produces for)."""
            current = getcurrent()
            marks = getattr(getattr(current, "timed_follower", current), "timed_marks", None)
            if marks is not None and step not in marks:
                marks[step] = clock()

        def marking(function, before: str | None = None, after: str | None = None):
            def timed(*args, **kwargs):
                if before:
                    mark(before)
                result = function(*args, **kwargs)
                if after:
                    mark(after)
                return result

            return timed

        def timed_read_requestline(handler):
            line = read_requestline(handler)
            getcurrent().timed_marks = {"request_read": clock()} if line else None
            return line

        ChatWaitHandler.read_requestline = timed_read_requestline
        self.wsgi.wsgi_app = marking(self.wsgi.wsgi_app, before="app_called")
        chat.read_json = marking(chat.read_json, after="body_read")
        chat.validate_chat_request = marking(chat.validate_chat_request, after="validated")
        chat.build_call = marking(chat.build_call, after="prompt_counted")
        http1._serialize = marking(http1._serialize, after="upstream_request_built")
        http1.Http1Transport._exchange = marking(
            http1.Http1Transport._exchange, before="upstream_sending", after="upstream_answered"
        )

        def timed_init(relay, *args, **kwargs):  # remembers the greenlet that writes to the client
            relay_init(relay, *args, **kwargs)
            relay.timed_follower = getcurrent()
            mark("relay_created")

        def timed_run(relay):
            getcurrent().timed_follower = relay.timed_follower
            return relay_run(relay)

        def timed_fill(connection):
            fill(connection)
            now, producer = clock(), getcurrent()
            last = getattr(producer, "timed_read", None)
            if last is not None and getattr(producer, "timed_follower", None) is not None:
                samples["upstream_gap"].append(now - last)
            producer.timed_read = now

        def timed_chunk(writer, content):
            mark("first_piece")
            producer = getcurrent()
            follower = getattr(producer, "timed_follower", None)
            if follower is not None and getattr(follower, "timed_read", None) is None:
                follower.timed_read, follower.timed_append = producer.timed_read, clock()
            return chunk(writer, content)

        def timed_write(handler, data):
            follower = getcurrent()
            read = getattr(follower, "timed_read", None)
            if read is not None:
                now = clock()
                samples["read_to_write"].append(now - read)
                samples["read_to_append"].append(follower.timed_append - read)
                samples["append_to_write"].append(now - follower.timed_append)
                follower.timed_read = None
            marks = getattr(follower, "timed_marks", None)
            if marks is not None and "first_piece" in marks:
                marks["first_written"] = clock()
                if len(marks) == len(FIRST_TOKEN_STEPS):
                    for a, b in STEP_PAIRS:
                        steps[a, b].append(marks[b] - marks[a])
                follower.timed_marks = None
            return write(handler, data)

        Relay.__init__, Relay.run = timed_init, timed_run
        http1.Connection.fill, StreamWriter.chunk = timed_fill, timed_chunk
        ChatWaitHandler.write = timed_write

        def report(*_: object) -> None:
            out = Path(os.environ["RELAY_LATENCY_OUT"])
            partial = out.with_suffix(".partial")
            measured = {k: quantiles(v) for k, v in samples.items()}
            measured["first_token"] = {f"{a}->{b}": quantiles(v) for (a, b), v in steps.items()}
            partial.write_text(json.dumps(measured))
            partial.replace(out)  # the reader sees the whole report or none
            for values in (*samples.values(), *steps.values()):
                values.clear()

        signal.signal(signal.SIGUSR2, report)


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    """Milliseconds (to the microsecond) at QUANTILES, and how many samples."""
    found: dict[str, float | int | None] = {}
    for q in QUANTILES:
        value = pct(values, q)
        found[f"p{q:g}_ms"] = None if value is None else round(value * 1000, 3)
    found["samples"] = len(values)
    return found
