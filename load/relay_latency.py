"""Where a token's time goes inside ChatWait, apart from the machine around it.

    ./scripts/load relay_latency.py                       # 100 streams of 200 tokens, 20 ms apart
    ./scripts/load relay_latency.py --concurrency 10

The overhead benchmark (bench.py) sees ChatWait from the client, together with everything
the machine does meanwhile. This diagnostic runs the same streams through a worker whose
relay is timed from inside (`load/timed_worker.py`, ChatWait's worker with a few functions
wrapped) and reports, per token:

- `read_to_write`: from the upstream read that brought the token to the write of its frame
  to the client, split into `read_to_append` (parse, append to the stream) and
  `append_to_write` (waking the follower, gunicorn's write);
- `upstream_gap`: the time between two reads of one upstream stream, as the worker sees it;
- `client_gap`: the time between two token arrivals at the client.

If `upstream_gap` is already as spread out as `client_gap`, the spread comes from before
ChatWait's relay: the upstream, and the processes waiting for a CPU.

And per streaming request, `first_token`: the time between consecutive steps from gunicorn's
first read of the request to the write of its first token (`timed_worker.FIRST_TOKEN_STEPS`).
The client's own first-token time is printed as `client_ttft`.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.bench import Bench  # noqa: E402
from load.timed_worker import quantiles  # noqa: E402


def worker_report(bench: Bench, out: Path) -> dict:
    """What the worker measured since its last report (it starts afresh after each)."""
    out.unlink(missing_ok=True)
    bench.server.worker.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while not out.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the timed worker wrote no report")
        time.sleep(0.05)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=20.0)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="relay-latency-")) / "worker.json"
    os.environ["RELAY_LATENCY_OUT"] = str(out)
    os.environ["GUNICORN_CMD_ARGS"] = "--worker-class load.timed_worker.TimedWorker"
    bench = Bench(argparse.Namespace(read_seconds=args.tokens * args.delay_ms / 1000 + 2, starts="steady"))
    try:
        bench.run_arm("chatwait", 4, 5, 1)  # warm-up, not reported
        worker_report(bench, out)
        client = bench.run_arm("chatwait", args.concurrency, args.tokens, args.delay_ms)
        report = worker_report(bench, out) | {
            "client_gap": quantiles(client["gaps"]),
            "client_ttft": quantiles(client["ttft"]),
        }
        report["errors"] = client["errors"]
    finally:
        bench.stop()
    print(json.dumps({"concurrency": args.concurrency, "tokens": args.tokens, "delay_ms": args.delay_ms, **report}))


if __name__ == "__main__":
    main()
