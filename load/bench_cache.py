"""What the response cache gives a repeated request: a hit's first token and the worker's CPU
against a miss's, through the fake upstream (its first token after `--first-ms`, then a token
every `--delay-ms`, as a model's server).

    ./scripts/load bench_cache.py --rounds 5 --requests 20

One ChatWait worker (RESPONSE_CACHE=true, memory store) pinned to CPU 0; the fake and this client
on CPU 1. Each round sends `--requests` native streams one after another as misses (each new),
then as many hits (the first miss's request again), the two arms alternating which goes first.
Reported per arm: the time to the first token and to the last (p50 over the round; median over
rounds and the range), and the worker's CPU per request (its user+system time over the arm).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import ChatWaitServer, FakeUpstream
from load.bench_client import MARKERS, one_stream, post_request


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--first-ms", dest="first_ms", type=float, default=300.0)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=10.0)
    return parser.parse_args()


def one(port: int, message: str) -> tuple[float, float]:
    """One native stream read whole (a raw socket, TCP_NODELAY: no delayed ACK in the way):
    seconds to its first chunk and to its end."""
    request = post_request("/v1/chat/streaming", {"message": message, "temperature": 0})
    found = one_stream(port, request, MARKERS["chatwait"], 60)
    if not found["ok"] or not found["arrivals"]:
        raise SystemExit(f"a stream failed: {found}")
    return found["arrivals"][0], found["total"]


def state(url: str, message: str) -> str:
    """What the cache makes of `message` now (its X-ChatWait-Cache)."""
    answer = httpx.post(f"{url}/v1/chat/wait", json={"message": message, "temperature": 0}, timeout=60)
    return answer.headers.get("x-chatwait-cache", "")


def arm(port: int, worker: psutil.Process, messages: list[str]) -> dict[str, float]:
    """Send each message in turn: p50 first token and end (ms), CPU per request (ms)."""
    before = worker.cpu_times()
    results = [one(port, message) for message in messages]
    after = worker.cpu_times()
    cpu = (after.user - before.user + after.system - before.system) / len(messages)
    return {
        "first_ms": statistics.median(r[0] for r in results) * 1000,
        "end_ms": statistics.median(r[1] for r in results) * 1000,
        "cpu_ms": cpu * 1000,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    args = arguments()
    fake = FakeUpstream(cpus={1})
    env = {
        "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "fake-model",
        "RESPONSE_CACHE": "true", "STREAM_STORE": "memory", "WEB_CONCURRENCY": "1", "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    server = ChatWaitServer(env, cpus={0})
    worker = psutil.Process(server.proc.pid).children()[0]
    directives = f"@tokens={args.tokens} @first_ms={args.first_ms} @delay_ms={args.delay_ms}"
    found: dict[str, list[dict]] = {"miss": [], "hit": []}
    try:
        kept = f"The same question {uuid.uuid4().hex[:8]} {directives}"
        one(server.port, kept)  # kept from now on
        states = {"hit": state(server.url, kept), "miss": state(server.url, f"New {uuid.uuid4().hex} {directives}")}
        for round_ in range(args.rounds):
            order = ("miss", "hit") if round_ % 2 == 0 else ("hit", "miss")
            for name in order:
                if name == "miss":
                    messages = [f"A new question {uuid.uuid4().hex} {directives}" for _ in range(args.requests)]
                else:
                    messages = [kept] * args.requests
                found[name].append(arm(server.port, worker, messages))
    finally:
        server.stop()
        fake.stop()
    report = {"tokens": args.tokens, "first_ms": args.first_ms, "delay_ms": args.delay_ms, "requests": args.requests}
    for name, rounds in found.items():
        report[name] = {"state": states[name]}
        report[name] |= {key: summary([r[key] for r in rounds]) for key in ("first_ms", "end_ms", "cpu_ms")}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
