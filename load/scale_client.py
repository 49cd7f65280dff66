"""One load process of bench_scale.py: streams started at given offsets from a common start time.

Reads a job as JSON on stdin ({port, request, offsets, end, start_at}), runs one stream per
offset (`bench_client.one_stream`, read until `end` seconds after the start), and prints the
results and its own CPU seconds as JSON. Several of these share the load of one step, so that
the load generator's own event loop does not add latency at high token rates.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.bench_client import MARKERS, one_stream  # noqa: E402


def main() -> None:
    job = json.loads(sys.stdin.read())
    request = job["request"].encode("latin-1")
    wait = job["start_at"] - time.time()
    if wait > 0:
        gevent.sleep(wait)
    began = time.process_time()
    end = job["end"]
    jobs = [
        gevent.spawn(one_stream, job["port"], request, MARKERS["chatwait"], 120, end - at, at) for at in job["offsets"]
    ]
    gevent.joinall(jobs, timeout=end + 60)
    results = [j.value or {"ok": False, "arrivals": []} for j in jobs]
    print(json.dumps({"results": results, "cpu_seconds": time.process_time() - began}))


if __name__ == "__main__":
    main()
