"""A burst: one streamed chat completion of N events the fake sends as fast as it can, relayed.

    ./scripts/load bench_burst.py --events 50000 --rounds 4 --baseline-root ../prev
    ./scripts/load bench_burst.py --kind text          # text tokens rather than reasoning deltas

Agents' streams are many small events (reasoning, a tool call's arguments): what each costs shows
in a burst. Each round asks every server arm in turn (the order rotating) for one reply of
`--events` reasoning deltas (or text tokens) at no delay, and reports the wall time to its last
byte and the CPU of the server's whole process tree, median and range over rounds. The wall time
cannot beat the fake's own (about 0.5 s for 50,000 events here); the CPU is what the relay costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import ChatWaitServer, FakeUpstream
from load.bench_run import cpu_split, tree_cpu_seconds
from tests.conftest import server_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--kind", choices=("reasoning", "text"), default="reasoning")
    parser.add_argument("--baseline-root", dest="roots", type=Path, action="append", default=[])
    args = parser.parse_args()
    server_cpus, load_cpus = cpu_split(True)
    fake = FakeUpstream(cpus=load_cpus)
    roots = {"chatwait": Path(__file__).resolve().parent.parent} | {f"baseline:{r.name}": r for r in args.roots}
    env = server_env(fake.base_url, MAX_TOKENS=str(args.events + 10))
    servers = {name: ChatWaitServer(env, root=root, cpus=server_cpus) for name, root in roots.items()}
    asked = f"@tokens={args.events}" if args.kind == "text" else f"@tokens=2 @reasoning={args.events}"
    body = {"model": "fake-model", "messages": [{"role": "user", "content": f"burst {asked} @delay_ms=0"}]}
    body |= {"max_tokens": args.events + 10, "stream": True}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    try:
        for number in range(args.rounds):
            names = list(servers)
            for name in names[number % len(names) :] + names[: number % len(names)]:
                results[name].append(_one(servers[name], body))
    finally:
        for server in servers.values():
            server.stop()
        fake.stop()
    print("| arm | wall to the last byte, median (rounds) | server CPU, median (rounds) |\n|---|---|---|")
    for name, found in results.items():
        walls, cpus = [w for w, _ in found], [c for _, c in found]
        print(f"| {name} | {_spread(walls)} | {_spread(cpus)} |")


def _one(server: ChatWaitServer, body: dict) -> tuple[float, float]:
    """One burst: its wall time and the server's CPU seconds."""
    tree = psutil.Process(server.proc.pid)
    before, started = tree_cpu_seconds(tree), time.monotonic()
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=300) as reply:
        for _ in reply.iter_raw():
            pass
    return time.monotonic() - started, tree_cpu_seconds(tree) - before


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}–{max(values):.3f})"


if __name__ == "__main__":
    main()
