"""Embedded-model benchmark: time to first token and tokens per second through the HTTP API.

    ./scripts/load bench_local.py --concurrency 1,4 --max-tokens 128 --repeats 3

Starts ChatWait with no upstream configured (so the embedded SmolLM2 model serves), and for
each concurrency sends that many streaming requests at once, `--repeats` times. Before that it
times the raw model in this process (llama-cpp-python alone, same settings) as the reference.
Reports TTFT (send to first `chunk`) and per-stream decode rate (chunks after the first, over
the time between the first and the last), as a table and as JSON (`--out`).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import ChatWaitServer  # noqa: E402
from load.bench_client import MARKERS, one_stream, post_request  # noqa: E402

SUBJECTS = [
    "a lighthouse keeper",
    "a seagull",
    "a baker",
    "a robot",
    "a gardener",
    "a river",
    "a violinist",
    "a fox",
    "a train driver",
    "a kite",
    "an astronomer",
    "a cat",
    "a potter",
    "a glacier",
    "a librarian",
]


def prompt(index: int) -> str:
    """A different prompt each time, so llama.cpp's prompt cache cannot skip the prompt."""
    return f"Write a short story about {SUBJECTS[index % len(SUBJECTS)]} (number {index})."


def raw_model(max_tokens: int, threads: int, repeats: int) -> dict:
    """The model alone, warmed up: the reference decode rate and time to first token."""
    from llama_cpp import Llama

    from app.config import bundled_model_path

    llama = Llama(model_path=str(bundled_model_path()), n_ctx=4096, n_threads=threads, verbose=False)
    runs = []
    for index in range(-1, repeats):  # run -1 warms up
        started = time.perf_counter()
        arrivals = []
        for chunk in llama.create_chat_completion(
            messages=[{"role": "user", "content": prompt(1000 + index)}], max_tokens=max_tokens, stream=True
        ):
            if chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.perf_counter() - started)
        if index >= 0:
            runs.append(([arrivals], time.perf_counter() - started))
    llama.close()
    return _rates(runs)


def _rates(batches: list[tuple[list[list[float]], float]]) -> dict:
    """TTFT and per-stream decode rate over all streams; the aggregate rate of each batch.

    A batch is the token arrival times of its streams (seconds from each send) and its wall time.
    """
    streams = [arrivals for batch, _ in batches for arrivals in batch]
    ttfts = [a[0] for a in streams if a]
    rates = [(len(a) - 1) / (a[-1] - a[0]) for a in streams if len(a) > 2 and a[-1] > a[0]]
    aggregate = [sum(len(a) for a in batch) / wall for batch, wall in batches]
    return {
        "streams": len(streams),
        "ttft_ms_median": round(statistics.median(ttfts) * 1000, 1) if ttfts else None,
        "ttft_ms_max": round(max(ttfts) * 1000, 1) if ttfts else None,
        "tokens_per_s_median": round(statistics.median(rates), 1) if rates else None,
        "tokens_per_s_aggregate": round(statistics.median(aggregate), 1) if aggregate else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--max-tokens", dest="max_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="artifacts/bench-local.json")
    args = parser.parse_args()

    raw = raw_model(args.max_tokens, args.threads, args.repeats)
    report: dict = {"max_tokens": args.max_tokens, "threads": args.threads, "raw_model": raw}
    print(f"raw model: {report['raw_model']}", flush=True)
    server = ChatWaitServer({"LOCAL_THREADS": str(args.threads)})
    counter = iter(range(10**6))

    def request() -> bytes:
        body = {"message": prompt(next(counter)), "max_tokens": args.max_tokens, "temperature": 0}
        return post_request("/v1/chat/streaming", body)

    try:
        one_stream(server.port, request(), MARKERS["chatwait"], 120)  # warm-up
        report["api"] = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            batches = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                marker = MARKERS["chatwait"]
                jobs = [gevent.spawn(one_stream, server.port, request(), marker, 300) for _ in range(concurrency)]
                gevent.joinall(jobs)
                batches.append(([job.value["arrivals"] for job in jobs], time.perf_counter() - started))
            result = {"concurrency": concurrency, **_rates(batches)}
            report["api"].append(result)
            print(f"through the API: {result}", flush=True)
    finally:
        server.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
