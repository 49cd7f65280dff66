"""What cache-affine routing saves on real model servers: first-token time per turn and the share
of prompts the servers read from their cache, with UPSTREAM_AFFINITY on (1.25) and off (0).

    ./scripts/load bench_affinity.py --rounds 2

Two llama-cpp-python servers on the embedded model, each pinned to a CPU of its own, with their
prompt cache on (`--cache true`: states kept in RAM, the longest matching prefix loaded) and
serving one request at a time (`--interrupt_requests false`), `concurrency: 1` in the upstreams
file (what ChatWait learns of that server on its defaults; `--concurrency 0`: none, requests
queue in the servers), behind one ChatWait (unpinned: it
and this client are light next to the servers). A run is 20 people in conversation at once, 6
turns each (a shared system prompt, a first message of their own, then follow-ups; 24 tokens an
answer), each pausing 10-30 s before a turn, so that a server serves others between two turns of
one. The hot run adds one conversation 10 times hotter: ten more people whose conversations
begin alike (`start`: their first replies part them), and the same ten under one
`prompt_cache_key` (`key`: one key ten times as busy). Arms alternate within a round; each
run's conversations are new, and the servers start afresh for every run. Reported per arm:
first-token time per turn (p50, p99, median over rounds and range), and the servers' prefix
reuse (prompt tokens they did not evaluate again, from their own log lines, over all prompt
tokens).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import bundled_model_path
from harness.processes import ChatWaitServer, LlamaServer

MODEL = "smol"
ANSWER_TOKENS = 24
CONVERSATIONS, TURNS, HOT_SESSIONS = 20, 6, 10
THINK_SECONDS = (10.0, 30.0)  # between a person's turns: the servers not saturated
ARMS = {"affinity": "1.25", "off": "0"}
SYSTEM = (
    "You are a patient guide to the natural world. Answer in plain words, one short paragraph, "
    "without lists. Prefer concrete examples over general statements, name places where it helps, "
    "and never repeat the question. If you do not know, say so in one sentence."
)
TOPICS = ("rivers", "mountains", "forests", "deserts", "glaciers", "islands", "caves", "volcanoes", "lakes", "coasts")
FOLLOW_UP = (
    "Thank you. Now say more about the part you found most interesting, as if to a curious child who "
    "keeps asking why; give one more example from another place in the world (part {turn})."
)
_REUSED = re.compile(rb"(\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")


def _first_message(conversation: str, n: int) -> str:
    topic = TOPICS[n % len(TOPICS)]
    return f"[{conversation}] Tell me something surprising about {topic}, and why it happens there."


def _turn(url: str, messages: list[dict[str, str]], key: str | None) -> tuple[float, str]:
    """One streamed turn (`key`: its prompt_cache_key): its first-token time (s) and its answer."""
    body = {"model": MODEL, "messages": messages, "stream": True, "max_tokens": ANSWER_TOKENS}
    if key:
        body["prompt_cache_key"] = key
    started = time.monotonic()
    first, pieces = None, []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"turn failed: {chunk['error'].get('code')}: {chunk['error'].get('message')}")
            text = chunk["choices"]
            content = text[0]["delta"].get("content") if text else None
            if content:
                first = first or time.monotonic()
                pieces.append(content)
    return (first or time.monotonic()) - started, "".join(pieces)


def _user(url: str, messages: list[dict[str, str]], seed: int, key: str | None) -> list[float]:
    """One person's conversation: TURNS turns, a think time of THINK_SECONDS (random, seeded)
    before each; the first-token times."""
    pause = random.Random(seed)
    times = []
    for turn in range(TURNS):
        time.sleep(pause.uniform(*THINK_SECONDS))
        if turn:
            messages.append({"role": "user", "content": FOLLOW_UP.format(turn=turn + 1)})
        try:
            took, answer = _turn(url, messages, key)
        except RuntimeError as failed:  # reported, and counted as the slowest turn
            print(f"  {failed}", flush=True)
            took, answer = float("inf"), ""
        times.append(took)
        messages.append({"role": "assistant", "content": answer or "..."})
    return times


def _run(url: str, tag: str, hot: str) -> list[float]:
    """One run's first-token times: 20 people in conversation at once (and the hot sessions:
    `start`, beginning alike; `key`, under one prompt_cache_key too)."""
    start = [{"role": "system", "content": SYSTEM}]
    firsts = [{"role": "user", "content": _first_message(f"{tag}-{n}", n)} for n in range(CONVERSATIONS)]
    conversations = [[*start, first] for first in firsts]
    keys: list[str | None] = [None] * len(conversations)
    if hot:  # ten more people whose conversations begin alike: 10 times a conversation's turns
        first = {"role": "user", "content": _first_message(f"{tag}-hot", 0)}
        conversations += [[*start, dict(first)] for _ in range(HOT_SESSIONS)]
        keys += [f"{tag}-hot" if hot == "key" else None] * HOT_SESSIONS
    with ThreadPoolExecutor(len(conversations)) as pool:
        runs = pool.map(lambda n: _user(url, conversations[n], n, keys[n]), range(len(conversations)))
        return [took for times in runs for took in times]


def _reuse(logs: list[Path]) -> float:
    """The share of prompt tokens the servers reused, from their logs."""
    reused = total = 0
    for log in logs:
        for hit, rest in _REUSED.findall(log.read_bytes()):
            reused, total = reused + int(hit), total + int(hit) + int(rest)
    return reused / total if total else 0.0


def _gateway(servers: list[LlamaServer], affinity: str, folder: Path, concurrency: int) -> ChatWaitServer:
    listing = folder / f"affinity-{affinity}.yaml"
    limit = f", concurrency: {concurrency}" if concurrency else ""
    listing.write_text(
        "upstreams:\n"
        + "".join(f"  - {{name: llama-{i}, url: {s.base_url!r}{limit}}}\n" for i, s in enumerate(servers))
    )
    env = {
        "UPSTREAMS_FILE": str(listing),
        "OPENAI_MODEL": MODEL,
        "ALLOWED_MODELS": MODEL,
        "UPSTREAM_AFFINITY": affinity,
        "TIMEOUT_SECONDS": "300",
        "IDLE_TIMEOUT_SECONDS": "300",
        "LOG_LEVEL": "WARNING",
    }
    return ChatWaitServer(env)


def _measured(path: Path, affinity: str, folder: Path, hot: str, concurrency: int) -> tuple[float, float, float]:
    """One run on two fresh servers (their caches empty: a run inherits nothing, and a cache
    filled by earlier runs slows its lookups): first-token p50, p99 (s) and the prefix reused."""
    flags = ("--cache", "true", "--interrupt_requests", "false")
    servers = [LlamaServer(path, MODEL, *flags, cpus={cpu}) for cpu in (0, 1)]
    try:
        gateway = _gateway(servers, affinity, folder, concurrency)
        try:
            times = _run(gateway.url, f"{uuid.uuid4().hex[:6]}", hot)
        finally:
            gateway.stop()
        reuse = _reuse([Path(server.log_file.name) for server in servers])
    finally:
        for server in servers:
            server.stop()
    return _percentile(times, 0.5), _percentile(times, 0.99), reuse


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="the servers' `concurrency` (0: none set)")
    args = parser.parse_args()
    path = bundled_model_path()
    assert path is not None, "./scripts/run installs the embedded model"
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(args.rounds):
            for hot in ("", "start", "key"):
                order = list(ARMS) if round_number % 2 == 0 else list(reversed(ARMS))
                for arm in order:
                    row = _measured(path, ARMS[arm], Path(folder), hot, args.concurrency)
                    results.setdefault((arm, hot), []).append(row)
                    print(f"round {round_number + 1} {hot or 'even'} {arm}: "
                          f"p50 {row[0] * 1000:.0f} ms, p99 {row[1] * 1000:.0f} ms, reuse {row[2]:.0%}",
                          flush=True)  # fmt: skip
    print("\n| run | arm | first token p50 (ms) | p99 (ms) | prefix reused |\n|---|---|---|---|---|")
    for (arm, hot), rows in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        p50s, p99s, reuses = zip(*rows, strict=True)
        print(
            f"| {hot or 'even'} | {arm} | {_cell(p50s, 1000, '.0f')} | {_cell(p99s, 1000, '.0f')} | "
            f"{_cell(reuses, 100, '.0f')} % |"
        )


def _cell(values: tuple[float, ...], scale: float, spec: str) -> str:
    """The median over rounds and the range."""
    median = statistics.median(values) * scale
    return f"{median:{spec}} ({min(values) * scale:{spec}}–{max(values) * scale:{spec}})"


if __name__ == "__main__":
    main()
