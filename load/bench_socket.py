"""Per-turn latency and CPU of a Responses chain: over one WebSocket against HTTP, rounds alternating.

    ./scripts/load bench_socket.py --turns 300 --rounds 6 [--baseline-root ../prev]

An agent's tool loop is a chain of short turns, each continuing the last with
`previous_response_id`. Each round runs `--turns` such turns (in chains of CHAIN), one after the other, on each arm in
turn (the order rotating each round): `http` (POST /v1/responses, streamed, on one kept-alive
connection, as an SDK's client does) and `websocket` (`response.create` messages on one socket,
as `client.responses.connect()` does), on this tree and on each `--baseline-root` checkout. A
turn is one token from the fake upstream, so what is measured is what a turn costs apart from
its tokens. Reported per arm: the server's whole process tree's CPU per turn (µs) and the
client's time from sending a turn to its `response.completed` (p50, p95; ms), medians and ranges
over rounds. Servers are pinned apart from the client and the fake as bench.py pins them.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from websockets.client import ClientProtocol  # noqa: E402
from websockets.uri import parse_uri  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.bench_client import post_request  # noqa: E402
from load.bench_run import Bench, tree_cpu_seconds  # noqa: E402

MESSAGE = "turn @tokens=1 @delay_ms=0"
COMPLETED = b"response.completed"
RESPONSE_ID = re.compile(rb'"id":"(resp_[0-9a-f]+)"')
CHUNKED_END = b"\r\n0\r\n\r\n"
CHAIN = 10  # turns a chain has before the next starts afresh (a chain's history grows with each)


def _body(previous: str | None) -> dict:
    body = {"model": "fake-model", "input": MESSAGE, "max_output_tokens": 1}
    return body if previous is None else {**body, "previous_response_id": previous}


def http_chain(port: int, turns: int) -> list[float]:
    """`turns` chained turns over one kept-alive connection; each turn's seconds."""
    times, previous = [], None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(turns):
            started = time.perf_counter()
            request = post_request("/v1/responses", {**_body(previous), "stream": True})
            sock.sendall(request.replace(b"Connection: close\r\n", b""))
            answer = b""
            while not answer.endswith(CHUNKED_END):
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                answer += data
            times.append(time.perf_counter() - started)
            previous = _completed_id(answer) if len(times) % CHAIN else None
    return times


def socket_chain(port: int, turns: int) -> list[float]:
    """`turns` chained turns as messages on one WebSocket; each turn's seconds."""
    client = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/v1/responses"))
    client.send_request(client.connect())
    times, previous = [], None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"".join(client.data_to_send()))
        _receive(sock, client, bool)
        for _ in range(turns):
            started = time.perf_counter()
            client.send_text(json.dumps({"type": "response.create", **_body(previous)}).encode())
            sock.sendall(b"".join(client.data_to_send()))
            messages = _receive(sock, client, _ended)
            times.append(time.perf_counter() - started)
            previous = _completed_id(messages[-1]) if len(times) % CHAIN else None
        client.send_close()
        sock.sendall(b"".join(client.data_to_send()))
    return times


def _receive(sock: socket.socket, client: ClientProtocol, done) -> list[bytes]:
    """Feed the socket's bytes to the protocol until `done(the messages received so far)`; those."""
    events: list = []
    while not done(events):
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the socket")
        client.receive_data(data)
        events.extend(client.events_received())
        outgoing = client.data_to_send()
        if outgoing:
            sock.sendall(b"".join(outgoing))
    return [bytes(getattr(event, "data", b"")) for event in events]


def _ended(events: list) -> bool:
    return bool(events) and COMPLETED in bytes(getattr(events[-1], "data", b""))[:64]


def _completed_id(data: bytes) -> str:
    found = RESPONSE_ID.findall(data[data.rfind(COMPLETED) :])
    if not found:
        raise ValueError("no response.completed with an id")
    return found[0].decode()


CHAINS = {"http": http_chain, "websocket": socket_chain}


def one_round(bench: Bench, arm: str, turns: int) -> tuple[float, list[float]]:
    """CPU seconds of the arm's server tree over a chain of `turns`, and each turn's seconds."""
    kind, _, folder = arm.partition(":")
    server = bench.servers[f"baseline:{folder}" if folder else "chatwait"]
    before = tree_cpu_seconds(server.master)
    times = CHAINS[kind](server.port, turns)
    cpu = tree_cpu_seconds(server.master) - before
    bench.settle(server.worker)
    return cpu, times


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--baseline-root", dest="baseline_roots", type=Path, action="append", default=[])
    parser.add_argument("--out", default="artifacts")
    args = parser.parse_args()
    bench = Bench()
    try:
        folders = bench.add_checkouts(args.baseline_roots)
        arms = [f"{kind}:{folder}".rstrip(":") for folder in folders for kind in CHAINS]
        for arm in arms:  # warm up: connections, lazy imports, caches
            one_round(bench, arm, 30)
        rounds: dict[str, list[dict]] = {arm: [] for arm in arms}
        for index in range(args.rounds):
            shift = index % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                cpu, times = one_round(bench, arm, args.turns)
                found = {"cpu_us": cpu / args.turns * 1e6, "p50_ms": _percentile(times, 0.5) * 1e3}
                rounds[arm].append({**found, "p95_ms": _percentile(times, 0.95) * 1e3})
            latest = {arm: {name: round(value, 2) for name, value in r[-1].items()} for arm, r in rounds.items()}
            print(json.dumps(latest), flush=True)
    finally:
        bench.stop()
    report = {"turns_per_round": args.turns, "rounds": args.rounds, "arms": summary(rounds)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_socket.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))


def summary(rounds: dict[str, list[dict]]) -> dict:
    """Per arm and measure: the median over rounds and the range."""
    return {
        arm: {
            name: {"median": round(statistics.median(v), 2), "range": [round(min(v), 2), round(max(v), 2)]}
            for name in found[0]
            for v in [[r[name] for r in found]]
        }
        for arm, found in rounds.items()
    }


def markdown(report: dict) -> str:
    lines = [
        "| arm | CPU per turn (µs), median (range) | turn p50 (ms) | turn p95 (ms) |",
        "|---|---|---|---|",
    ]
    for arm, found in report["arms"].items():
        cells = [f"{found[n]['median']:g} ({found[n]['range'][0]:g}–{found[n]['range'][1]:g})" for n in found]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
