"""What a mid-answer rescue costs the client: the time from the last token before an upstream cut
to the first token after it (the fake cuts at once after a token, and a continuation's first
token comes at once: the seam is ChatWait's reaction, plus, by `message`, the repeated tokens
the continuation sends again before new ones, 20 ms each).

    ./scripts/load bench_rescue.py --streams 20 --rounds 5

A pool of two servers (both the fake upstream, which honours continuations as a deterministic
model would) behind one ChatWait worker pinned to CPU 0; the fake and this client on CPU 1. Each
round runs `--streams` concurrent native streams of 60 tokens 20 ms apart, cut at token 30 (`reset`:
the connection dropped; `nofinish`: [DONE] without a finish_reason at the end, so rescued after the
last token), once per arm (continuation `prefill` and `message`, cut `reset`), arms alternating.
Reported per arm: the seam (p50, p95; median over rounds and the range) and whether every
answer came whole.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.processes import ChatWaitServer, FakeUpstream

TOKENS, CUT_AT, DELAY_MS = 60, 30, 20
ARMS = ("prefill", "message")


def _server(fake: FakeUpstream, continuation: str, folder: Path) -> ChatWaitServer:
    listing = folder / f"{continuation}.yaml"
    listing.write_text(
        "upstreams:\n"
        + "".join(
            f"  - {{name: {name}, url: {fake.base_url!r}, continuation: {continuation}}}\n" for name in ("a", "b")
        )
    )
    env = {
        "UPSTREAMS_FILE": str(listing),
        "OPENAI_MODEL": "fake-model",
        "LOG_LEVEL": "WARNING",
        "UPSTREAM_REST_SECONDS": "0.1",
    }
    return ChatWaitServer(env, cpus={0})


def _stream(url: str) -> tuple[float, float, bool]:
    """One stream cut at CUT_AT: the gap at the seam (from the last token before the cut to the
    first after it), the median other gap (ms), and whether the answer came whole."""
    message = f"{uuid.uuid4().hex} @tokens={TOKENS} @delay_ms={DELAY_MS} @fault=reset@{CUT_AT} @fail_times=1"
    arrivals: list[float] = []
    text = []
    with httpx.stream("POST", f"{url}/v1/chat/streaming", json={"message": message}, timeout=60) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "chunk":
                arrivals.append(time.perf_counter())
                text.append(json.loads(line[5:])["content"])
    whole = "".join(text) == "".join(f"tok{i} " for i in range(TOKENS))
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]
    if not whole or len(gaps) < CUT_AT:
        print(f"not whole: {len(arrivals)} chunks, status {response.status_code}", file=sys.stderr)
        return float("nan"), float("nan"), False
    usual = statistics.median(g for i, g in enumerate(gaps) if i != CUT_AT - 1)
    return gaps[CUT_AT - 1], usual, whole


def _round(url: str, streams: int) -> tuple[list[float], bool]:
    """The seams of one round's streams (ms), and whether every answer came whole."""
    with ThreadPoolExecutor(max_workers=streams) as pool:
        results = list(pool.map(lambda _: _stream(url), range(streams)))
    return [seam for seam, _, whole in results if whole], all(whole for *_, whole in results)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    fake = FakeUpstream(cpus={1})
    folder = Path(tempfile.mkdtemp(prefix="bench-rescue-"))
    servers = {arm: _server(fake, arm, folder) for arm in ARMS}
    found: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
    whole = True
    try:
        for number in range(options.rounds):
            for arm in ARMS if number % 2 == 0 else ARMS[::-1]:
                added, complete = _round(servers[arm].url, options.streams)
                whole &= complete
                found[arm].append((_quantile(added, 0.5), _quantile(added, 0.95)))
                time.sleep(1.0)  # the cut servers' rests (0.1 s, doubling) end: each round starts with both
    finally:
        for server in servers.values():
            server.stop()
        fake.stop()
    for arm, rounds in found.items():
        p50s, p95s = [r[0] for r in rounds], [r[1] for r in rounds]
        print(
            f"{arm:8} the seam (usual gap {DELAY_MS} ms): "
            f"p50 {statistics.median(p50s):.1f} ms ({min(p50s):.1f}-{max(p50s):.1f}), "
            f"p95 {statistics.median(p95s):.1f} ms ({min(p95s):.1f}-{max(p95s):.1f}) over {len(rounds)} rounds"
        )
    print(f"every answer whole: {whole}")


if __name__ == "__main__":
    main()
