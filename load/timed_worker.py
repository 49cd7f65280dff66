"""A gunicorn gevent worker that times each token inside ChatWait's relay (see relay_latency.py).

Kept apart from the runner: gunicorn imports the worker class in its master process too,
which must not be monkey-patched.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from greenlet import getcurrent
from app.worker import ChatWaitWorker

from load.stats import pct

QUANTILES = (50, 90, 99, 99.9)


class TimedWorker(ChatWaitWorker):
    """ChatWait's worker, timing each token from its upstream read to its client write.

    Writes what it measured to $RELAY_LATENCY_OUT as JSON on SIGUSR2, and starts afresh.
    """

    def load_wsgi(self) -> None:
        super().load_wsgi()
        import gunicorn.http.wsgi as gunicorn_wsgi

        from app.providers import http1
        from app.relay import Relay
        from app.writer import StreamWriter

        samples: dict[str, list[float]] = {
            "read_to_write": [],
            "read_to_append": [],
            "append_to_write": [],
            "upstream_gap": [],
        }
        clock = time.perf_counter
        relay_init, relay_run = Relay.__init__, Relay.run
        fill, chunk, write_chunk = http1.Connection.fill, StreamWriter.chunk, gunicorn_wsgi.util.write_chunk

        def timed_init(relay, *args, **kwargs):  # remembers the greenlet that writes to the client
            relay_init(relay, *args, **kwargs)
            relay.timed_follower = getcurrent()

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
            producer = getcurrent()
            follower = getattr(producer, "timed_follower", None)
            if follower is not None and getattr(follower, "timed_read", None) is None:
                follower.timed_read, follower.timed_append = producer.timed_read, clock()
            return chunk(writer, content)

        def timed_write_chunk(sock, data):
            follower = getcurrent()
            read = getattr(follower, "timed_read", None)
            if read is not None:
                now = clock()
                samples["read_to_write"].append(now - read)
                samples["read_to_append"].append(follower.timed_append - read)
                samples["append_to_write"].append(now - follower.timed_append)
                follower.timed_read = None
            return write_chunk(sock, data)

        Relay.__init__, Relay.run = timed_init, timed_run
        http1.Connection.fill, StreamWriter.chunk = timed_fill, timed_chunk
        gunicorn_wsgi.util.write_chunk = timed_write_chunk

        def report(*_: object) -> None:
            out = Path(os.environ["RELAY_LATENCY_OUT"])
            partial = out.with_suffix(".partial")
            partial.write_text(json.dumps({k: quantiles(v) for k, v in samples.items()}))
            partial.replace(out)  # the reader sees the whole report or none
            for values in samples.values():
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
