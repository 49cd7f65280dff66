"""Overhead benchmark: the same fake upstream, read directly and through ChatWait, in one run.

    .venv/bin/python load/bench.py --concurrency 1,10,100 --tokens 200 --delay-ms 20 --rounds 2

Starts the fake upstream and ChatWait (gunicorn, one gevent worker) on loopback, then for each
concurrency runs the arms alternately, `--rounds` times: `direct` (streaming chat completions
straight from the fake), `chatwait` (POST /v1/chat/streaming), and for wait mode `direct_wait`
and `chatwait_wait`. The client is gevent on raw sockets, so its own cost stays small and equal
across arms. Reports time to first token, inter-token gaps and errors per arm, and the added
time (ChatWait minus direct), as a table and as JSON (`--out`).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.processes import ChatWaitServer, FakeUpstream  # noqa: E402

ARMS = ("direct", "chatwait", "direct_wait", "chatwait_wait")
MARKERS = {"direct": b'"content":"', "chatwait": b"event: chunk\n"}


def _request(path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + payload


def one_stream(port: int, request: bytes, marker: bytes, deadline: float) -> dict:
    """Send one request; return the arrival time of each token event, relative to the send."""
    arrivals: list[float] = []
    tail = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            sock.sendall(request)
            status = None
            while True:
                data = sock.recv(262144)
                now = time.perf_counter() - started
                if not data:
                    break
                if status is None:
                    status = int(data.split(b" ", 2)[1])
                window = tail + data
                arrivals.extend([now] * window.count(marker))
                tail = window[-(len(marker) - 1) :]
        ok = status == 200
        return {"ok": ok, "arrivals": arrivals, "total": time.perf_counter() - started}
    except OSError:
        return {"ok": False, "arrivals": arrivals, "total": None}


def run_arm(arm: str, port: int, concurrency: int, tokens: int, delay_ms: float) -> dict:
    """`concurrency` simultaneous requests of one arm."""
    message = f"bench @tokens={tokens} @delay_ms={delay_ms}"
    if arm.startswith("direct"):
        body = {"model": "fake-model", "messages": [{"role": "user", "content": message}]}
        if arm == "direct":
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        request = _request("/v1/chat/completions", body)
    else:
        request = _request("/v1/chat/wait" if arm.endswith("_wait") else "/v1/chat/streaming", {"message": message})
    marker = MARKERS.get(arm, b"")
    deadline = 60 + tokens * delay_ms / 1000 * 2
    jobs = [gevent.spawn(one_stream, port, request, marker, deadline) for _ in range(concurrency)]
    gevent.joinall(jobs, timeout=deadline + 10)
    results = [job.value or {"ok": False, "arrivals": [], "total": None} for job in jobs]
    errors = sum(1 for r in results if not r["ok"] or (marker and len(r["arrivals"]) != tokens))
    firsts = [r["arrivals"][0] for r in results if r["arrivals"]]
    gaps = [b - a for r in results for a, b in zip(r["arrivals"], r["arrivals"][1:])]
    totals = [r["total"] for r in results if r["total"] is not None and r["ok"]]
    return {"errors": errors, "ttft": firsts, "gaps": gaps, "totals": totals}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def summarise(samples: dict) -> dict:
    return {
        "errors": samples["errors"],
        "ttft_ms": {f"p{q}": ms(pct(samples["ttft"], q)) for q in (50, 95, 99)},
        "gap_ms": {f"p{q}": ms(pct(samples["gaps"], q)) for q in (50, 99)},
        "total_ms": {"p50": ms(pct(samples["totals"], 50)), "mean": ms(statistics.fmean(samples["totals"]) if samples["totals"] else None)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,10,100")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="artifacts/bench.json")
    args = parser.parse_args()

    fake = FakeUpstream()
    server = ChatWaitServer(
        {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "fake-model", "MAX_STREAMS": "20000"}
    )
    report: dict = {"tokens": args.tokens, "delay_ms": args.delay_ms, "rounds": args.rounds, "results": []}
    try:
        for arm in ARMS:  # warm-up: first connections, lazy imports, caches
            run_arm(arm, fake.port if arm.startswith("direct") else server.port, 4, 5, 1)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            pooled = {arm: {"errors": 0, "ttft": [], "gaps": [], "totals": []} for arm in ARMS}
            for _ in range(args.rounds):
                for arm in pooled:
                    port = fake.port if arm.startswith("direct") else server.port
                    samples = run_arm(arm, port, concurrency, args.tokens, args.delay_ms)
                    for key in pooled[arm]:
                        pooled[arm][key] += samples[key]
            summary = {arm: summarise(samples) for arm, samples in pooled.items()}
            added = {
                f"ttft_p{q}_ms": _diff(summary["chatwait"]["ttft_ms"][f"p{q}"], summary["direct"]["ttft_ms"][f"p{q}"])
                for q in (50, 95, 99)
            }
            added["gap_p99_ms"] = _diff(summary["chatwait"]["gap_ms"]["p99"], summary["direct"]["gap_ms"]["p99"])
            added["wait_p50_ms"] = _diff(summary["chatwait_wait"]["total_ms"]["p50"], summary["direct_wait"]["total_ms"]["p50"])
            report["results"].append({"concurrency": concurrency, "arms": summary, "added": added})
            print(f"concurrency {concurrency:>5}: added {added}  errors "
                  f"{ {arm: s['errors'] for arm, s in summary.items()} }", flush=True)
    finally:
        server.stop()
        fake.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


if __name__ == "__main__":
    main()
