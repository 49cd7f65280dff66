"""What the decided server stack adds by itself, beside what ChatWait adds: a floor for bench.py.

    ./scripts/load floor.py                       # 100 streams of 200 tokens, 20 ms apart, 3 rounds
    ./scripts/load floor.py --concurrency 10 --rounds 5

The same streams as the overhead benchmark, through three servers in turn, each on one
gunicorn gevent worker (ChatWait's worker class) in front of the same fake upstream:

- `wsgi`: a bare WSGI callable that relays with the least possible code (`floor_worker.py`);
- `flask`: the same relay as one Flask view;
- `chatwait`: ChatWait itself.

In each round every server's arm runs right after a direct arm (straight to the fake, the same
client), and each reports added time to first token (p50, p95) against its direct arms, and its
worker's CPU per relayed token. What `wsgi` and `flask` add is what gunicorn's gevent worker and
Flask cost on this machine before any of ChatWait's own work: validation, logging, the stream
store, resumption, retries, deadlines and token counting. Prints one JSON object.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.bench import Bench  # noqa: E402
from load.stats import ms, pct  # noqa: E402

SERVERS = ("wsgi", "flask", "chatwait")


def run_server(server: str, args: argparse.Namespace) -> dict:
    """Added first-token time and CPU per token of one server, over `args.rounds` rounds."""
    if server == "chatwait":
        os.environ.pop("GUNICORN_CMD_ARGS", None)
    else:
        os.environ["GUNICORN_CMD_ARGS"] = "--worker-class load.floor_worker.FloorWorker"
        os.environ["FLOOR_APP"] = server
    bench = Bench(argparse.Namespace(read_seconds=args.tokens * args.delay_ms / 1000 + 2, starts="steady"))
    ttft: dict[str, list[float]] = {"direct": [], "chatwait": []}
    cpu = tokens = errors = 0
    try:
        for arm in ("direct", "chatwait"):
            bench.run_arm(arm, 4, 5, 1)  # warm-up, not reported
        for _ in range(args.rounds):
            for arm in ("direct", "chatwait"):
                result = bench.run_arm(arm, args.concurrency, args.tokens, args.delay_ms)
                ttft[arm] += result["ttft"]
                errors += result["errors"] + result["incomplete"]
                if arm == "chatwait":
                    cpu, tokens = cpu + result["cpu"], tokens + result["tokens"]
    finally:
        bench.stop()
    measured = ttft["direct"] and ttft["chatwait"]  # a server that answered no stream has no figure
    added = {
        f"added_ttft_p{q}_ms": ms(pct(ttft["chatwait"], q) - pct(ttft["direct"], q)) if measured else None
        for q in (50, 95)
    }
    return {
        **added,
        "direct_ttft_p50_ms": ms(pct(ttft["direct"], 50)),
        "cpu_us_per_token": round(cpu / tokens * 1e6, 1) if tokens else None,
        "streams": len(ttft["chatwait"]),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default=",".join(SERVERS), help="a comma-separated subset of " + ",".join(SERVERS))
    args = parser.parse_args()
    report = {"concurrency": args.concurrency, "tokens": args.tokens, "delay_ms": args.delay_ms, "rounds": args.rounds}
    for server in args.servers.split(","):
        if server not in SERVERS:
            parser.error(f"unknown server {server!r}: use {', '.join(SERVERS)}")
        report[server] = run_server(server, args)
        print(json.dumps({server: report[server]}), file=sys.stderr, flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
