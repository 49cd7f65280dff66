"""Scale-out benchmark: tokens per second relayed by one worker and by two, on the Redis store.

    ./scripts/load bench_scale.py                       # 2 arms x 3 rounds, alternating
    ./scripts/load bench_scale.py --streams 300 --delay-ms 5 --rounds 5

Starts the fake upstream, a redis-server and two ChatWait servers (STREAM_STORE=redis), one
with WEB_CONCURRENCY=1 and one with 2. Each round, each arm in turn gets `--streams` streams
at once, `--delay-ms` between tokens, read for `--seconds`; reported per arm: tokens per
second relayed, inter-token p99 (ms), and CPU per relayed token summed over the arm's workers,
and Redis's CPU per token.

CPUs: with N CPUs, the one-worker arm runs on the last CPU, the two-worker arm on the last
two, and the load (this client, the fake, Redis) on the CPUs before those. With fewer than four
CPUs the load cannot be kept off the workers' CPUs: then it shares them, the run says so
(`load_shares_worker_cpus`), and the tokens/s ratio measures the machine, not ChatWait. The CPU
per token of each arm stays meaningful: two workers that need no more CPU per token than one
can relay twice as much on two free cores.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.bench_client import MARKERS, one_stream, post_request  # noqa: E402
from load.processes import ChatWaitServer, FakeUpstream, RedisServer  # noqa: E402
from load.stats import ms, pct  # noqa: E402

ENV = {"OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "fake-model", "MAX_STREAMS": "20000", "MAX_TOKENS": "20000"}


def cpu_plan() -> dict[str, set[int] | None]:
    """Which CPUs each process runs on (see the module docstring)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return {"one": None, "two": None, "load": None}
    if len(cpus) >= 4:
        return {"one": {cpus[-1]}, "two": set(cpus[-2:]), "load": set(cpus[:-2])}
    return {"one": {cpus[-1]}, "two": set(cpus[-2:]), "load": set(cpus[:-1])}


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def run_arm(server: ChatWaitServer, workers: list[psutil.Process], redis: psutil.Process, args) -> dict:
    """`args.streams` streams at once for `args.seconds`: tokens/s, inter-token p99, CPU per token."""
    tokens = int(args.seconds * 1000 / args.delay_ms) * 2
    request = post_request("/v1/chat/streaming", {"message": f"scale @tokens={tokens} @delay_ms={args.delay_ms}"})
    before, redis_before = cpu_seconds(workers), cpu_seconds([redis])
    marker = MARKERS["chatwait"]
    jobs = [gevent.spawn(one_stream, server.port, request, marker, 120, args.seconds) for _ in range(args.streams)]
    gevent.joinall(jobs, timeout=args.seconds + 60)
    worker_cpu, redis_cpu = cpu_seconds(workers) - before, cpu_seconds([redis]) - redis_before
    results = [job.value or {"ok": False, "arrivals": []} for job in jobs]
    relayed = sum(len(r["arrivals"]) for r in results)
    gaps = [b - a for r in results for a, b in zip(r["arrivals"], r["arrivals"][1:], strict=False)]
    gevent.sleep(2)  # the DELETEs land, the workers go idle
    return {
        "tokens_per_second": round(relayed / args.seconds),
        "gap_p99_ms": ms(pct(gaps, 99)),
        "worker_cpu_per_token_us": round(worker_cpu / relayed * 1e6, 1) if relayed else None,
        "redis_cpu_per_token_us": round(redis_cpu / relayed * 1e6, 1) if relayed else None,
        "errors": sum(1 for r in results if not r["ok"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="artifacts")
    args = parser.parse_args()
    plan = cpu_plan()
    if plan["load"]:
        os.sched_setaffinity(0, plan["load"])
    fake, redis = FakeUpstream(cpus=plan["load"]), RedisServer(cpus=plan["load"])
    servers: dict[str, ChatWaitServer] = {}
    try:
        for name, workers in (("one", 1), ("two", 2)):
            env = {**ENV, "OPENAI_BASE_URL": fake.base_url, "STREAM_STORE": "redis", "REDIS_URL": redis.url}
            servers[name] = ChatWaitServer({**env, "WEB_CONCURRENCY": str(workers)}, cpus=plan[name])
        processes = {name: psutil.Process(s.proc.pid).children() for name, s in servers.items()}
        redis_process = psutil.Process(redis.proc.pid)
        rounds: dict[str, list[dict]] = {name: [] for name in servers}
        for index in range(args.rounds):
            for name in ["one", "two"] if index % 2 == 0 else ["two", "one"]:
                rounds[name].append(run_arm(servers[name], processes[name], redis_process, args))
                print(json.dumps({"round": index, "arm": name, **rounds[name][-1]}), flush=True)
    finally:
        for server in servers.values():
            server.stop()
        fake.stop()
        redis.stop()
    shares = bool(plan["load"] and plan["two"] and plan["load"] & plan["two"])
    pairs = zip(rounds["one"], rounds["two"], strict=True)
    ratios = [two["tokens_per_second"] / one["tokens_per_second"] for one, two in pairs]
    report = {
        "arguments": vars(args),
        "cpus": {k: sorted(v) if v else None for k, v in plan.items()},
        "load_shares_worker_cpus": shares,
        "rounds": rounds,
        "two_over_one_tokens_per_second": {"min": round(min(ratios), 2), "max": round(max(ratios), 2)},
    }
    Path(args.out).mkdir(exist_ok=True)
    (Path(args.out) / "bench-scale.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("cpus", "load_shares_worker_cpus", "two_over_one_tokens_per_second")}))


if __name__ == "__main__":
    main()
