"""Overhead benchmark: what ChatWait adds on top of the model, measured against a direct client.

    ./scripts/load bench.py --quick                       # 1/10/100 streams, 200 tokens, 20 ms
    ./scripts/load bench.py                               # the full grid (about an hour)
    ./scripts/load bench.py --quick --baseline-root ../other-checkout   # this tree against another
    ./scripts/load bench.py --concurrency 100 --tokens 200 --rounds 6 --no-wait \\
        --variant no_direct_send --variant geventhttpclient   # what a trick or a library is worth
    ./scripts/load bench.py --concurrency 100 --tokens 200 --rounds 3 --floor   # the stack's floor
    ./scripts/load bench.py --quick --rounds 5 --no-wait --redis   # the Redis store against memory
    ./scripts/load bench.py --concurrency 100 --tokens 200 --rounds 4 --no-wait --redis --variant limits
        # every request under a client key's limits (counted in Redis in the redis_limits arm)
    ./scripts/load bench.py --quick --rounds 5 --no-wait --openai  # POST /v1/chat/completions against the native
    ./scripts/load bench.py --quick --rounds 5 --no-wait --openai --responses  # and POST /v1/responses
    ./scripts/load bench.py --quick --rounds 5 --no-wait --pool  # a pool of two fake upstreams against one

Starts the fake upstream and ChatWait (gunicorn, one gevent worker) on loopback. With two or
more CPUs the server runs on the last one and the fake and this client on the others
(`taskset`; `--no-pin` turns that off). For every cell of the grid (concurrent streams x reply
tokens x ms between tokens) the arms run alternately, `--rounds` times, the servers' order
rotating each round: `direct` (streaming chat completions straight from the fake) and
`chatwait` (POST /v1/chat/streaming), both read by the same raw-socket gevent client; at up to
100 streams also `direct_wait` and `chatwait_wait` (unless `--no-wait`). More server arms:
`baseline:FOLDER` (another checkout, same virtualenv), a variant (ChatWait with one trick switched
off or another upstream transport: load/variants.py), `floor_wsgi` and `floor_flask` (the least possible relay on
the same worker, load/floor_worker.py), `redis` (STREAM_STORE=redis, one worker, its redis-server on the
load's CPUs; Redis's own CPU per token is reported beside the worker's), `openai` (the `chatwait`
server's OpenAI-compatible endpoint, POST /v1/chat/completions with stream and usage), `responses`
(the same server's POST /v1/responses, streamed), `tools` (its chat completions streaming one tool
call), `messages` (its POST /v1/messages, streamed), the first two also on every baseline
checkout's server (`openai:FOLDER`, `responses:FOLDER`), `pool` (ChatWait with two fake upstreams
in OPENAI_BASE_URL, the second on the load's CPUs too), `messages:anthropic` and `openai:anthropic`
(`--anthropic-upstream`: a server whose one upstream is the fake spoken to as a Messages API
server, `kind = "anthropic"`: /v1/messages passed through, chat completions translated).

Starts are spread over one reply's length (`--starts steady`: N streams open at once, each
stream's tokens at its own instants within the token period), or the same without that phase
shift (`aligned`), or all at once (`burst`). A stream is read for at most `--read-seconds`,
then dropped (and stopped with DELETE on ChatWait), so long replies measure their steady state.

Reported per cell and server arm: added time to first token (p50, p95, p99, and the p50's range
over the rounds), added inter-token p99, errors and incomplete streams, the CPU time per relayed
token of the server's whole process tree, gunicorn's master and its worker (and its range over
the rounds), and how long the client, the fake and the worker
waited for a CPU (Linux schedstat). After each arm the worker is left to go idle. Then memory per
open stream and RSS growth across sequential requests (ChatWait only). The run is invalid if the
direct arm sees inter-token p99 more than 1 ms off nominal at up to 100 streams (the machine,
not ChatWait, is then the bottleneck). Writes artifacts/bench.json, bench.md and bench.png.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.bench_report import markdown, write_outputs  # noqa: E402
from load.bench_run import Bench  # noqa: E402
from load.variants import VARIANTS  # noqa: E402

FLOOR_APPS = ("wsgi", "flask")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,10,100,1000")
    parser.add_argument("--tokens", default="200,2000,10000")
    parser.add_argument("--delay-ms", dest="delay_ms", default="5,20")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--read-seconds", dest="read_seconds", type=float, default=6.0)
    parser.add_argument("--memory-streams", dest="memory_streams", type=int, default=1000, help="0: no memory probe")
    parser.add_argument("--memory-delay-ms", dest="memory_delay_ms", type=float, default=100.0)
    parser.add_argument("--sequential", type=int, default=10000, help="0 skips the RSS growth run")
    parser.add_argument("--starts", choices=("steady", "aligned", "burst"), default="steady")
    parser.add_argument("--quick", action="store_true", help="1/10/100 streams, 200 tokens, 20 ms; 2,000 sequential")
    parser.add_argument(
        "--baseline-root",
        dest="baseline_roots",
        type=Path,
        action="append",
        default=[],
        help="another checkout to compare with (repeatable; the arm is named after its folder)",
    )
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS), help="repeatable")
    parser.add_argument("--floor", action="store_true", help="add the floor servers (bare WSGI and Flask relays)")
    parser.add_argument(
        "--redis", action="store_true", help="add ChatWait on the Redis store (its own redis-server; baselines' too)"
    )
    parser.add_argument("--openai", action="store_true", help="add ChatWait's OpenAI-compatible endpoint (same server)")
    parser.add_argument("--responses", action="store_true", help="add ChatWait's Responses API (same server)")
    parser.add_argument("--messages", action="store_true", help="add ChatWait's Anthropic Messages API (same server)")
    parser.add_argument(
        "--tools", action="store_true", help="add streamed tool calls on ChatWait's chat completions (same server)"
    )
    parser.add_argument("--pool", action="store_true", help="add ChatWait with a pool of two fake upstreams")
    parser.add_argument(
        "--anthropic-upstream",
        dest="anthropic_upstream",
        action="store_true",
        help="add ChatWait over the fake as a Messages API server: its Messages (passed through) and chat arms",
    )
    parser.add_argument("--no-wait", dest="wait_arms", action="store_false", help="no wait-mode arms")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server and load to CPUs")
    parser.add_argument("--out", default="artifacts")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.tokens, args.delay_ms = "1,10,100", "200", "20"
        args.sequential, args.memory_streams = 2000, 200
    return args


def start_servers(bench: Bench, args: argparse.Namespace) -> None:
    bench.add_checkouts(args.baseline_roots)
    for name in args.variant:
        bench.add_server(name, variant=name)
    if args.redis:
        bench.add_redis_server()
        for root in args.baseline_roots:  # the Redis store of each other checkout too
            bench.add_redis_server(f"redis:{root.resolve().name}", root=root.resolve())
        for name in args.variant:  # and each variant on it
            bench.add_redis_server(f"redis_{name}", variant=name)
    if args.pool:
        bench.add_pool_server()
    for kind in (kind for kind in ("openai", "responses", "tools", "messages") if getattr(args, kind)):
        bench.openai_arms[kind] = "chatwait"
        for root in args.baseline_roots if kind not in ("tools", "messages") else ():  # `kind:folder` too
            bench.openai_arms[f"{kind}:{root.resolve().name}"] = f"baseline:{root.resolve().name}"
    if args.anthropic_upstream:
        bench.add_anthropic_server()
        bench.openai_arms["messages:anthropic"] = bench.openai_arms["openai:anthropic"] = "anthropic"
    if args.floor:
        for app in FLOOR_APPS:
            bench.add_server(f"floor_{app}", worker_class="load.floor_worker.FloorWorker", FLOOR_APP=app)


def main() -> None:
    args = parse_arguments()
    bench = Bench(pin=args.pin, starts=args.starts, read_seconds=args.read_seconds)
    report: dict = {"arguments": {k: str(v) for k, v in vars(args).items()}, "pinned": bench.pinning(), "cells": []}
    try:
        start_servers(bench, args)
        bench.warm_up()
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for tokens in (int(t) for t in args.tokens.split(",")):
                for delay in (float(d) for d in args.delay_ms.split(",")):
                    cell = bench.cell(concurrency, tokens, delay, args.rounds, args.wait_arms and concurrency <= 100)
                    report["cells"].append(cell)
                    keys = ("concurrency", "tokens", "delay_ms", "servers", "valid", "invalid_reason")
                    progress = {k: cell[k] for k in keys}
                    print(json.dumps(progress), flush=True)
        if args.memory_streams > 0:
            streams, delay = args.memory_streams, args.memory_delay_ms
            report["memory"] = [bench.memory_per_stream(streams, tokens, 3.5, delay) for tokens in (200, 10000)]
            print(json.dumps(report["memory"]), flush=True)
        if args.sequential > 0:
            report["rss_growth"] = bench.rss_growth(args.sequential)
            print(json.dumps(report["rss_growth"]), flush=True)
    finally:
        bench.stop()
    report["valid"] = all(cell["valid"] for cell in report["cells"])
    write_outputs(report, Path(args.out))
    print(markdown(report))
    print(f"wrote {args.out}/bench.json, bench.png, bench.md")
    for cell in report["cells"]:
        if not cell["valid"]:
            print(f"INVALID: {cell['concurrency']} streams x {cell['tokens']} tokens: {cell['invalid_reason']}")


if __name__ == "__main__":
    main()
