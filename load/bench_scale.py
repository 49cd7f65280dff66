"""Scale-out benchmark: the tokens/s one worker and two relay on the Redis store within a latency bound.

    ./scripts/load bench_scale.py                          # 2 arms x 3 rounds, alternating
    ./scripts/load bench_scale.py --rounds 5 --steps 30,40,50,60,70 --seconds 6

Starts the fake upstream, a redis-server and two ChatWait servers (STREAM_STORE=redis), one
with WEB_CONCURRENCY=1 and one with 2, each worker on a CPU of its own. Each round, each arm in
turn climbs a ladder of loads: `--steps` streams per worker (the two-worker arm gets twice as
many), `--delay-ms` between tokens, starts spread over a second and each stream's tokens at its
own phase, then `--seconds` measured. A step passes when no stream failed, at least 95% of the
tokens asked for arrived, and the inter-token p99 is at most `--p99-ms` over the nominal
`--delay-ms` (the fake upstream sends on an absolute clock). The ladder stops at the first
failure; the arm's capacity is the tokens/s at which its p99 reaches the bound, interpolated
between its last passing step and that one. Reported per step: tokens/s, inter-token p99, the
workers' CPU per relayed token and Redis's, the share of their slices used, the load's CPU.

CPUs. With four or more, the one-worker arm runs on the last CPU, the two-worker arm on the
last two, and the load (this client, the fake, Redis) on the CPUs before those. With two or
three, the load cannot be kept off the workers' CPUs, so each worker gets a fixed slice of its
CPU instead (`--slice`, default 0.4: a CFS quota of 1 ms per 2.5 ms, with priority over the
load within it, load/cpu_slice.py), and the load runs on every CPU in what the slices leave.
Each worker is then a small core of its own. While the one-worker arm runs, a stand-in busy in
bursts holds the same slice of the other CPU, so that the load generator has the same CPU left
over in both arms. The report gives how much of its slice each arm used and the load's CPU share, so a
reader can check that the workers, not the load generator, were the limit.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import ChatWaitServer, FakeUpstream  # noqa: E402
from harness.redis_servers import RedisServer  # noqa: E402
from load import cpu_slice  # noqa: E402
from load.bench_client import post_request  # noqa: E402
from load.bench_run import cpu_seconds  # noqa: E402
from load.schedule import GOLDEN_FRACTION  # noqa: E402
from load.stats import ms, pct  # noqa: E402

ENV = {"OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "fake-model", "MAX_STREAMS": "20000", "MAX_TOKENS": "20000"}
# Busy 0.5 ms, idle 0.75 ms: 40% of a CPU in bursts, as a worker at the default slice.
BALLAST = (
    "import time\n"
    "while True:\n"
    "    end = time.perf_counter() + 0.0005\n"
    "    while time.perf_counter() < end: pass\n"
    "    time.sleep(0.00075)\n"
)
RAMP_SECONDS = 1.0  # streams start over this long; tokens count from half a second after
DELIVERED_AT_LEAST = 0.95


def cpu_plan(slice_share: float | None) -> dict:
    """The CPUs of each arm's workers (one set per worker), of the load, and the slice per worker."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("bench_scale needs at least two CPUs")
    plan = {"one": [{cpus[-1]}], "two": [{cpus[-2]}, {cpus[-1]}], "load": set(cpus[:-2]) or None, "slice": None}
    if len(cpus) < 4 or slice_share:
        if not cpu_slice.available():
            raise SystemExit("fewer than four CPUs and no CPU cgroups to slice them: run as root on Linux")
        plan["load"], plan["slice"] = None, slice_share or 0.4
    return plan


def cpu_total(processes: list[psutil.Process]) -> float:
    return sum(cpu_seconds(p) for p in processes)


def place_workers(name: str, server: ChatWaitServer, plan: dict) -> tuple[list[psutil.Process], list]:
    """Pin each of the arm's workers to its CPU and, when slicing, into a slice of its own."""
    workers = sorted(psutil.Process(server.proc.pid).children(), key=lambda p: p.pid)
    slices = []
    for index, (worker, cpus) in enumerate(zip(workers, plan[name], strict=True)):
        os.sched_setaffinity(worker.pid, cpus)
        if plan["slice"]:
            slices.append(cpu_slice.CpuSlice(f"{name}{index}", plan["slice"]))
            slices[-1].add(worker.pid)
    return workers, slices


def run_step(server: ChatWaitServer, streams: int, arm: dict, redis: psutil.Process, args) -> dict:
    """`streams` streams, measured for `args.seconds` once all have started."""
    period = args.delay_ms / 1000
    start, end = RAMP_SECONDS + 0.5, RAMP_SECONDS + 0.5 + args.seconds
    tokens = int((end + 2) / period)
    request = post_request("/v1/chat/streaming", {"message": f"scale @tokens={tokens} @delay_ms={args.delay_ms}"})
    offsets = [RAMP_SECONDS * i / streams + period * (i * GOLDEN_FRACTION % 1.0) for i in range(streams)]
    load = [redis, arm["fake"]]
    before, load_before = cpu_total(arm["workers"]), [cpu_seconds(p) for p in load]
    throttled_before = [s.stat().get("nr_throttled", 0) for s in arm["slices"]]
    offsets, results, client_cpu, began = drive(server.port, request, offsets, end, args.clients)
    worker_cpu = cpu_total(arm["workers"]) - before
    redis_cpu, fake_cpu = (cpu_seconds(p) - b for p, b in zip(load, load_before, strict=True))
    wall = time.monotonic() - began
    counted, gaps = 0, []
    for at, result in zip(offsets, results, strict=True):
        times = [at + t for t in result["arrivals"]]
        counted += sum(1 for t in times if start <= t < end)
        gaps += [b - a for a, b in itertools.pairwise(times) if a >= start and b < end]
    relayed = sum(len(r["arrivals"]) for r in results)
    gevent.sleep(2)  # the DELETEs land, the workers go idle
    found = {
        "streams": streams,
        "tokens_per_second": round(counted / args.seconds),
        "asked_per_second": round(streams / period),
        "gap_p99_ms": ms(pct(gaps, 99)),
        "added_gap_p99_ms": ms(pct(gaps, 99) - period) if gaps else None,
        "errors": sum(1 for r in results if not r["ok"]),
        "worker_cpu_per_token_us": round(worker_cpu / relayed * 1e6, 1) if relayed else None,
        "redis_cpu_per_token_us": round(redis_cpu / relayed * 1e6, 1) if relayed else None,
        "load_cpu_share": round((client_cpu + fake_cpu + redis_cpu) / wall, 2),  # of one CPU
    }
    if arm["slices"]:
        found["slice_used"] = round(worker_cpu / (len(arm["slices"]) * arm["slices"][0].share * wall), 2)
        found["throttled_periods"] = sum(s.stat().get("nr_throttled", 0) for s in arm["slices"]) - sum(throttled_before)
    found["passed"] = (
        found["errors"] == 0
        and found["tokens_per_second"] >= DELIVERED_AT_LEAST * found["asked_per_second"]
        and found["added_gap_p99_ms"] is not None
        and found["added_gap_p99_ms"] <= args.p99_ms
    )
    return found


def drive(port: int, request: bytes, offsets: list[float], end: float, clients: int) -> tuple[list, list, float, float]:
    """Run the streams in `clients` processes (load/scale_client.py), which start together;
    the offsets in the order of the results, the results, the clients' CPU seconds, and when
    they started (time.monotonic)."""
    shares = [offsets[index::clients] for index in range(clients)]
    start_at, started = time.time() + 0.5, time.monotonic() + 0.5
    command = [sys.executable, str(Path(__file__).resolve().parent / "scale_client.py")]
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in shares]
    replies = []
    for proc, share in zip(procs, shares, strict=True):
        job = {"port": port, "request": request.decode("latin-1"), "offsets": share, "end": end, "start_at": start_at}
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
    for proc in procs:
        replies.append(json.loads(proc.stdout.read()))
        proc.wait(timeout=60)
    results = [result for reply in replies for result in reply["results"]]
    client_cpu = sum(reply["cpu_seconds"] for reply in replies)
    return [at for share in shares for at in share], results, client_cpu, started


def climb(name: str, server: ChatWaitServer, arm: dict, redis: psutil.Process, args, index: int) -> dict:
    """Run the arm's ladder up to its first failing step; its capacity and every step."""
    steps = []
    ballast = start_ballast(arm.get("ballast"))
    try:
        for per_worker in args.steps:
            step = run_step(server, per_worker * len(arm["workers"]), arm, redis, args)
            steps.append(step)
            print(json.dumps({"round": index, "arm": name, **step}), flush=True)
            if not step["passed"]:
                break
    finally:
        if ballast is not None:
            ballast.kill()
            ballast.wait()
    return {"capacity_tokens_per_second": capacity(steps, args.p99_ms), "steps": steps}


def capacity(steps: list[dict], bound_ms: float) -> int:
    """The tokens/s at which the added inter-token p99 reaches `bound_ms`, interpolated between
    the last passing step and the first failing one (a step's tokens/s when it failed on errors
    or delivery instead; 0 when the first step failed)."""
    passed = [step for step in steps if step["passed"]]
    if not passed:
        return 0
    last, failed = passed[-1], steps[len(passed)] if len(passed) < len(steps) else None
    if failed is None or failed["errors"] or failed["added_gap_p99_ms"] is None:
        return last["tokens_per_second"]
    rise = failed["added_gap_p99_ms"] - last["added_gap_p99_ms"]
    if failed["added_gap_p99_ms"] <= bound_ms or rise <= 0:
        return last["tokens_per_second"]  # it failed on delivery
    share = (bound_ms - last["added_gap_p99_ms"]) / rise
    return round(last["tokens_per_second"] + share * (failed["tokens_per_second"] - last["tokens_per_second"]))


def start_ballast(where: tuple[set[int], cpu_slice.CpuSlice] | None) -> subprocess.Popen | None:
    """A stand-in for the second worker, in a slice on the CPU the one-worker arm leaves free,
    busy in bursts as a loaded worker is, so that the load generator has the same CPU left over
    in both arms."""
    if where is None:
        return None
    cpus, piece = where
    ballast = subprocess.Popen([sys.executable, "-c", BALLAST], stdin=subprocess.DEVNULL)
    os.sched_setaffinity(ballast.pid, cpus)
    piece.add(ballast.pid)
    return ballast


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=[40, 45, 50, 55, 60, 65, 70])
    parser.add_argument("--delay-ms", dest="delay_ms", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--p99-ms", dest="p99_ms", type=float, default=5.0)
    parser.add_argument(
        "--slice", type=float, default=None, help="a worker's share of its CPU (default: 0.4 on <4 CPUs)"
    )
    parser.add_argument("--clients", type=int, default=2, help="load processes (each one gevent loop)")
    parser.add_argument("--out", default="artifacts")
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up (cgroups, servers) when stopped
    plan = cpu_plan(args.slice)
    if plan["load"]:
        os.sched_setaffinity(0, plan["load"])
    fake, redis = FakeUpstream(cpus=plan["load"]), RedisServer(cpus=plan["load"])
    servers: dict[str, ChatWaitServer] = {}
    arms: dict[str, dict] = {}
    try:
        for name, workers in (("one", 1), ("two", 2)):
            env = {**ENV, "OPENAI_BASE_URL": fake.base_url, "STREAM_STORE": "redis", "REDIS_URL": redis.url}
            servers[name] = ChatWaitServer({**env, "WEB_CONCURRENCY": str(workers)})
            found, slices = place_workers(name, servers[name], plan)
            arms[name] = {"workers": found, "slices": slices, "fake": psutil.Process(fake.proc.pid)}
        if plan["slice"]:
            arms["one"]["ballast"] = (plan["two"][0], cpu_slice.CpuSlice("ballast", plan["slice"]))
        time.sleep(1)
        redis_process = psutil.Process(redis.proc.pid)
        for name in servers:  # warm-up: first connections, lazy imports
            run_step(servers[name], 10, arms[name], redis_process, args)
        rounds: dict[str, list[dict]] = {name: [] for name in servers}
        for index in range(args.rounds):
            for name in ["one", "two"] if index % 2 == 0 else ["two", "one"]:
                rounds[name].append(climb(name, servers[name], arms[name], redis_process, args, index))
    finally:
        for server in servers.values():
            server.stop()
        for arm in arms.values():
            for piece in [*arm["slices"], *([arm["ballast"][1]] if "ballast" in arm else [])]:
                piece.close()
        fake.stop()
        redis.stop()
    report(args, plan, rounds)


def report(args, plan: dict, rounds: dict[str, list[dict]]) -> None:
    """Write artifacts/bench-scale.json and print the summary line."""
    pairs = zip(rounds["one"], rounds["two"], strict=True)
    ratios = [two["capacity_tokens_per_second"] / max(1, one["capacity_tokens_per_second"]) for one, two in pairs]
    capacity = {name: [r["capacity_tokens_per_second"] for r in arm] for name, arm in rounds.items()}
    medians = {name: statistics.median(found) for name, found in capacity.items()}
    summary = {
        "cpus": {k: [sorted(c) for c in plan[k]] for k in ("one", "two")} | {"load": sorted(plan["load"] or [])},
        "worker_slice": round(plan["slice"], 3) if plan["slice"] else None,
        "capacity": capacity,
        "two_over_one": {
            "each_round": [round(r, 2) for r in ratios],
            "of_the_medians": round(medians["two"] / max(1, medians["one"]), 2),
        },
    }
    Path(args.out).mkdir(exist_ok=True)
    (Path(args.out) / "bench-scale.json").write_text(
        json.dumps({"arguments": vars(args), **summary, "rounds": rounds}, indent=1)
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
