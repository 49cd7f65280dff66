"""Per-request CPU: sequential one-token requests to every server arm, rounds alternating.

    ./scripts/load bench_requests.py --requests 2000 --rounds 6 --baseline-root ../prev
    ./scripts/load bench_requests.py --variant quiet --variant metrics_off   # what logs and metrics cost

Agents make many short calls, so what a request costs apart from its tokens decides how many a
worker core serves. Each round sends `--requests` one-token streaming requests, one after the
other, on one kept-alive connection as an SDK's client does (`--new-connections`: each on a new
one, as bench.py's client does), to each arm in turn (the order rotating each round):
`chatwait` (POST /v1/chat/streaming), `openai` (the same server's POST /v1/chat/completions,
streamed), `responses` (its POST /v1/responses, streamed, with `--responses`), `baseline:FOLDER`
(another checkout, whose endpoints are `openai:FOLDER` and `responses:FOLDER`), `--variant` arms
(load/variants.py), and the bare relays `floor_wsgi` and `floor_flask` (load/floor_worker.py). Reported: CPU of each
server's whole process tree per request (µs; median and range over rounds) and its ratio to
`floor_wsgi` in the same round. Servers are pinned apart from the client and the fake as
bench.py pins them.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.bench_client import MARKERS, one_stream, post_request  # noqa: E402
from load.bench_run import Bench, tree_cpu_seconds  # noqa: E402

BARE = "floor_wsgi"


CHUNKED_END = b"\r\n0\r\n\r\n"


FAMILIES = ("openai", "responses")  # arms on a server's other endpoints: `openai`, `openai:FOLDER`, ...


def requests_of(arm: str) -> tuple[bytes, bytes]:
    """The request bytes and the token marker of one one-token request of `arm`."""
    message = "bench @tokens=1 @delay_ms=0"
    family = arm.split(":", 1)[0]
    if family == "openai":
        body = {"model": "fake-model", "messages": [{"role": "user", "content": message}], "max_tokens": 1}
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        return post_request("/v1/chat/completions", body), MARKERS["openai"]
    if family == "responses":
        body = {"model": "fake-model", "input": message, "max_output_tokens": 1, "stream": True}
        return post_request("/v1/responses", body), MARKERS["responses"]
    return post_request("/v1/chat/streaming", {"message": message, "max_tokens": 1}), MARKERS["chatwait"]


def server_of(arm: str) -> str:
    """The server an arm's requests go to: `openai` to `chatwait`, `openai:FOLDER` to `baseline:FOLDER`."""
    family, _, folder = arm.partition(":")
    if family not in FAMILIES:
        return arm
    return f"baseline:{folder}" if folder else "chatwait"


def one_round(bench: Bench, arm: str, count: int, keep_alive: bool) -> tuple[float, int]:
    """CPU seconds of the arm's server tree over `count` sequential requests, and how many failed."""
    server = bench.servers[server_of(arm)]
    request, marker = requests_of(arm)
    before = tree_cpu_seconds(server.master)
    if keep_alive:
        failed = kept_alive(server.port, request.replace(b"Connection: close\r\n", b""), marker, count)
    else:
        failed = 0
        for _ in range(count):
            result = one_stream(server.port, request, marker, 30)
            failed += not (result["ok"] and len(result["arrivals"]) == 1)
    cpu = tree_cpu_seconds(server.master) - before
    bench.settle(server.worker)
    return cpu, failed


def kept_alive(port: int, request: bytes, marker: bytes, count: int) -> int:
    """`count` requests one after the other on one connection (a chunked body each); how many
    did not answer 200 with one token."""
    failed = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            sock.sendall(request)
            answer = b""
            while not answer.endswith(CHUNKED_END):
                data = sock.recv(65536)
                if not data:
                    return failed + 1
                answer += data
            failed += not (answer.startswith(b"HTTP/1.1 200") and answer.count(marker) == 1)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--baseline-root", dest="baseline_roots", type=Path, action="append", default=[])
    parser.add_argument("--no-openai", dest="openai", action="store_false")
    parser.add_argument("--responses", action="store_true", help="POST /v1/responses too, on every checkout")
    parser.add_argument("--new-connections", dest="keep_alive", action="store_false")
    parser.add_argument("--variant", action="append", default=[], help="load/variants.py names, repeatable")
    parser.add_argument("--out", default="artifacts")
    args = parser.parse_args()
    bench = Bench()
    try:
        folders = bench.add_checkouts(args.baseline_roots)
        for name in args.variant:
            bench.add_server(name, variant=name)
        for app in ("wsgi", "flask"):
            bench.add_server(f"floor_{app}", worker_class="load.floor_worker.FloorWorker", FLOOR_APP=app)
        families = [family for family, wanted in zip(FAMILIES, (args.openai, args.responses), strict=True) if wanted]
        arms = [*bench.servers, *(f"{family}:{folder}".rstrip(":") for family in families for folder in folders)]
        for arm in arms:  # warm up: connections, lazy imports, caches
            one_round(bench, arm, 50, args.keep_alive)
        per_round: dict[str, list[float]] = {arm: [] for arm in arms}
        failures = dict.fromkeys(arms, 0)
        for index in range(args.rounds):
            shift = index % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                cpu, failed = one_round(bench, arm, args.requests, args.keep_alive)
                per_round[arm].append(cpu / args.requests * 1e6)
                failures[arm] += failed
            print(json.dumps({arm: round(values[-1], 1) for arm, values in per_round.items()}), flush=True)
    finally:
        bench.stop()
    report = summary(per_round, failures, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_requests.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))


def summary(per_round: dict[str, list[float]], failures: dict[str, int], args: argparse.Namespace) -> dict:
    """Median and range per arm, and each round's ratio to the bare relay's CPU per request."""
    arms = {}
    for arm, values in per_round.items():
        ratios = [value / bare for value, bare in zip(values, per_round[BARE], strict=True)]
        arms[arm] = {
            "cpu_per_request_us": round(statistics.median(values), 1),
            "range_us": [round(min(values), 1), round(max(values), 1)],
            "over_bare": round(statistics.median(ratios), 2),
            "over_bare_range": [round(min(ratios), 2), round(max(ratios), 2)],
            "failed": failures[arm],
        }
    return {"requests_per_round": args.requests, "rounds": args.rounds, "keep_alive": args.keep_alive, "arms": arms}


def markdown(report: dict) -> str:
    lines = [
        "| arm | CPU per request (µs), median | range over rounds | over the bare relay, median | range | failed |",
        "|---|---|---|---|---|---|",
    ]
    for arm, found in report["arms"].items():
        low, high = found["range_us"]
        rlow, rhigh = found["over_bare_range"]
        lines.append(
            f"| {arm} | {found['cpu_per_request_us']:g} | {low:g}–{high:g} | {found['over_bare']:g} "
            f"| {rlow:g}–{rhigh:g} | {found['failed']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
