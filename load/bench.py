"""Overhead benchmark: what ChatWait adds on top of the model, measured against a direct client.

    ./scripts/load bench.py                    # the full grid (about an hour: wait mode reads whole replies)
    ./scripts/load bench.py --quick            # 1/10/100 streams, 200 tokens, 20 ms (about 2 minutes)
    ./scripts/load bench.py --quick --starts burst   # all streams of a cell start at the same instant

Starts the fake upstream and ChatWait (gunicorn, one gevent worker) on loopback. For every cell
of the grid (concurrent streams x reply tokens x ms between tokens) the arms run alternately,
`--rounds` times: `direct` (streaming chat completions straight from the fake) and `chatwait`
(POST /v1/chat/streaming), both read by the same raw-socket gevent client; at up to 100 streams
also `direct_wait` and `chatwait_wait`. Starts are spread over one reply's length by default
(`--starts steady`: N streams open at once, as N independent users keep them, each stream's
tokens at its own instants within the token period), or the same without that phase shift
(`--starts aligned`: at 100 streams of 200 tokens every stream's tokens come at once), or all
at the same instant (`--starts burst`). A stream is read for at most `--read-seconds`, then dropped
(and stopped with DELETE on ChatWait), so long replies measure their steady state.

Reported per cell: added time to first token (p50, p95, p99), added inter-token p99, errors
(a refused or broken request), incomplete streams (answered, but fewer tokens than the reply
within the read window: an overloaded server), ChatWait's CPU time per relayed token (the
worker's CPU during the chatwait arm over the tokens relayed), and how long the client, the
fake and the worker each waited for a CPU in each arm (Linux schedstat run-queue time: the
chatwait arm runs three busy processes on the machine's cores, the direct arm two). After each
arm the worker is left to go idle before the next one starts.
Then: memory per open stream (worker RSS with N streams open minus idle, over
N) for short and long replies, and RSS growth across 10,000 sequential requests. The run is
declared invalid if the direct arm itself sees inter-token p99 more than 1 ms off nominal at
up to 100 streams (then the machine, not ChatWait, is the bottleneck).

Writes artifacts/bench.json, artifacts/bench.png (added latency against concurrency) and
artifacts/bench.md (the table for the README).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.processes import ChatWaitServer, FakeUpstream  # noqa: E402
from load.schedule import start_offsets  # noqa: E402
from load.stats import ms, pct  # noqa: E402

ARMS = ("direct", "chatwait", "direct_wait", "chatwait_wait")
MARKERS = {"direct": b'"content":"', "chatwait": b"event: chunk\n"}
SELF_CHECK_MS = 1.0
PROCESSES = ("client", "fake", "worker")  # whose CPU waits are reported


def post_request(path: str, body: dict) -> bytes:
    """The raw bytes of a JSON POST that asks the server to close the connection afterwards."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    )
    return (head + "Connection: close\r\n\r\n").encode() + payload


def one_stream(
    port: int, request: bytes, marker: bytes, deadline: float, read_seconds: float | None = None, after: float = 0.0
) -> dict:
    """Send one request `after` seconds from now; the arrival time of each token event
    (seconds after the send). Stops reading after `read_seconds` (None: to the end), and then
    stops a ChatWait stream at once with DELETE, as a client that drops a stream should (the
    direct arm's upstream stops when its connection closes).
    """
    if after:
        gevent.sleep(after)
    arrivals: list[float] = []
    tail = b""
    head = b""
    status = None
    dropped = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            sock.sendall(request)
            while True:
                data = sock.recv(262144)
                now = time.perf_counter() - started
                if not data:
                    break
                if status is None:
                    head += data
                    if b"\r\n\r\n" not in head:
                        continue
                    status = int(head.split(b" ", 2)[1])
                    data = head
                window = tail + data
                arrivals.extend([now] * window.count(marker))
                tail = window[-(len(marker) - 1) :]
                if read_seconds is not None and now > read_seconds:
                    dropped = True
                    break
        stream_id = None
        for line in head.split(b"\r\n\r\n")[0].split(b"\r\n"):
            if line.lower().startswith(b"x-stream-id:"):
                stream_id = line.split(b":", 1)[1].strip().decode()
        if dropped and stream_id:
            _stop(port, stream_id)
        return {
            "ok": status == 200,
            "arrivals": arrivals,
            "total": time.perf_counter() - started,
        }
    except OSError:
        return {"ok": False, "arrivals": arrivals, "total": None}


def _stop(port: int, stream_id: str) -> None:
    """DELETE a stream the client stopped reading. An overloaded worker may not answer in time:
    the stream then ends on its own, and `settle` waits for it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"DELETE /v1/chat/streaming/{stream_id} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            while sock.recv(65536):
                pass
    except OSError:
        pass


class Bench:
    """The two processes and the measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.fake = FakeUpstream()
        self.server = self._start_server()

    def _start_server(self, **extra: str) -> ChatWaitServer:
        server = ChatWaitServer(
            {
                "OPENAI_BASE_URL": self.fake.base_url,
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_MODEL": "fake-model",
                "MAX_STREAMS": "20000",
                "MAX_TOKENS": "20000",
                **extra,
            }
        )
        server.worker = psutil.Process(server.proc.pid).children()[0]
        return server

    def stop(self) -> None:
        self.server.stop()
        self.fake.stop()

    def run_arm(self, arm: str, concurrency: int, tokens: int, delay_ms: float) -> dict:
        """`concurrency` simultaneous requests of one arm."""
        message = f"bench @tokens={tokens} @delay_ms={delay_ms}"
        streaming = arm in ("direct", "chatwait")
        if arm.startswith("direct"):
            body = {"model": "fake-model", "messages": [{"role": "user", "content": message}], "max_tokens": tokens}
            if streaming:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            port, request = self.fake.port, post_request("/v1/chat/completions", body)
        else:
            body = {"message": message, "max_tokens": tokens}
            path = "/v1/chat/streaming" if streaming else "/v1/chat/wait"
            port, request = self.server.port, post_request(path, body)
        marker = MARKERS.get(arm, b"")
        read_seconds = self.args.read_seconds if streaming else None
        deadline = 60 + tokens * delay_ms / 1000 * 2
        reply_seconds = tokens * delay_ms / 1000
        spread = min(reply_seconds, read_seconds or reply_seconds)
        offsets = start_offsets(self.args.starts, concurrency, spread, delay_ms / 1000)
        cpu_before = self.server.worker.cpu_times()
        waits_before = self.runqueue_waits()
        jobs = [gevent.spawn(one_stream, port, request, marker, deadline, read_seconds, offset) for offset in offsets]
        gevent.joinall(jobs, timeout=deadline + 10)
        cpu_after = self.server.worker.cpu_times()
        waits = collections.Counter(self.runqueue_waits())
        waits.subtract(waits_before)
        results = [job.value or {"ok": False, "arrivals": [], "total": None} for job in jobs]
        self.settle()
        expected = None if read_seconds and tokens * delay_ms / 1000 > read_seconds else tokens
        errors = sum(1 for r in results if not r["ok"])
        incomplete = sum(1 for r in results if r["ok"] and marker and expected and len(r["arrivals"]) != expected)
        relayed = sum(len(r["arrivals"]) for r in results)
        cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        return {
            "errors": errors,
            "incomplete": incomplete,
            "ttft": [r["arrivals"][0] for r in results if r["arrivals"]],
            "gaps": [b - a for r in results for a, b in zip(r["arrivals"], r["arrivals"][1:])],
            "totals": [r["total"] for r in results if r["total"] is not None and r["ok"]],
            "tokens": relayed,
            "cpu": cpu,
            "runqueue_wait_s": waits,
        }

    def runqueue_waits(self) -> dict[str, float]:
        """Seconds each process (this client, the fake, the worker) has spent runnable but not
        running, waiting for a CPU (Linux schedstat). Three busy processes share two cores in
        the chatwait arm and two in the direct arm: this shows how much they got in each
        other's way."""
        pids = (os.getpid(), self.fake.proc.pid, self.server.worker.pid)
        return {name: _runqueue_wait(pid) for name, pid in zip(PROCESSES, pids)}

    def settle(self, limit_seconds: float = 120.0) -> None:
        """Wait until the worker is idle again, so that one arm's backlog never slows the next."""
        deadline = time.monotonic() + limit_seconds
        self.server.worker.cpu_percent()
        while time.monotonic() < deadline:
            gevent.sleep(0.5)
            if self.server.worker.cpu_percent() < 5:
                return

    def cell(self, concurrency: int, tokens: int, delay_ms: float) -> dict:
        arms = ARMS if concurrency <= 100 else ("direct", "chatwait")
        pooled = {
            arm: {"errors": 0, "incomplete": 0, "ttft": [], "gaps": [], "totals": [], "tokens": 0, "cpu": 0.0}
            | {"runqueue_wait_s": collections.Counter()}
            for arm in arms
        }
        for _ in range(self.args.rounds):
            for arm in arms:
                samples = self.run_arm(arm, concurrency, tokens, delay_ms)
                for key, value in samples.items():
                    pooled[arm][key] += value
        summary = {arm: summarise(samples) for arm, samples in pooled.items()}
        added = {
            f"ttft_p{q}_ms": _diff(summary["chatwait"]["ttft_ms"][f"p{q}"], summary["direct"]["ttft_ms"][f"p{q}"])
            for q in (50, 95, 99)
        }
        added["gap_p99_ms"] = _diff(summary["chatwait"]["gap_ms"]["p99"], summary["direct"]["gap_ms"]["p99"])
        if "chatwait_wait" in summary:
            added["wait_p50_ms"] = _diff(
                summary["chatwait_wait"]["total_ms"]["p50"], summary["direct_wait"]["total_ms"]["p50"]
            )
        chatwait = pooled["chatwait"]
        cpu_per_token_us = round(chatwait["cpu"] / chatwait["tokens"] * 1e6, 1) if chatwait["tokens"] else None
        direct_gap = summary["direct"]["gap_ms"]["p99"]
        valid = concurrency > 100 or direct_gap is None or tokens < 2 or direct_gap - delay_ms <= SELF_CHECK_MS
        return {
            "concurrency": concurrency,
            "tokens": tokens,
            "delay_ms": delay_ms,
            "arms": summary,
            "added": added,
            "cpu_per_token_us": cpu_per_token_us,
            "errors": {arm: s["errors"] for arm, s in summary.items()},
            "incomplete": {arm: s["incomplete"] for arm, s in summary.items()},
            "valid": valid,
        }

    def memory_per_stream(self, streams: int, tokens: int, hold_seconds: float, delay_ms: float) -> dict:
        """Worker RSS with `streams` open (mid-reply, after `hold_seconds`) minus idle, over `streams`."""
        gevent.sleep(1)
        idle = self.server.worker.memory_info().rss
        message = f"mem @tokens={tokens} @delay_ms={delay_ms}"
        request = post_request("/v1/chat/streaming", {"message": message, "max_tokens": tokens})
        jobs = [
            gevent.spawn(one_stream, self.server.port, request, MARKERS["chatwait"], 120, hold_seconds)
            for _ in range(streams)
        ]
        gevent.sleep(hold_seconds - 0.5)
        loaded = self.server.worker.memory_info().rss
        gevent.joinall(jobs, timeout=120)
        errors = sum(1 for job in jobs if not (job.value and job.value["ok"] and job.value["arrivals"]))
        return {  # each stream was stopped with DELETE when its client stopped reading
            "streams": streams,
            "tokens": tokens,
            "delay_ms": delay_ms,
            "held_seconds": hold_seconds,
            "kb_per_stream": round((loaded - idle) / streams / 1024, 1),
            "errors": errors,
        }

    def rss_growth(self, requests: int) -> dict:
        """RSS after a warm-up tenth of `requests` sequential requests, and after all of them.

        Uses a server with a 2 s STREAM_TTL_SECONDS, so that finished streams, which are kept
        for resumes by design, do not count as growth.
        """
        server = self._start_server(STREAM_TTL_SECONDS="2")
        try:
            request = post_request("/v1/chat/streaming", {"message": "leak @tokens=5", "max_tokens": 5})
            errors = 0
            warm = requests // 10
            rss_warm = 0
            for index in range(requests):
                result = one_stream(server.port, request, MARKERS["chatwait"], 30)
                errors += not (result["ok"] and len(result["arrivals"]) == 5)
                if index + 1 == warm:
                    gevent.sleep(3)
                    rss_warm = server.worker.memory_info().rss
            gevent.sleep(3)
            rss_end = server.worker.memory_info().rss
            return {
                "requests": requests,
                "rss_after_warmup_mb": round(rss_warm / 2**20, 1),
                "rss_end_mb": round(rss_end / 2**20, 1),
                "growth_percent": round((rss_end - rss_warm) / rss_warm * 100, 2),
                "errors": errors,
            }
        finally:
            server.stop()


def _runqueue_wait(pid: int) -> float:
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended, or a kernel without schedstats
    return total / 1e9


def summarise(samples: dict) -> dict:
    return {
        "errors": samples["errors"],
        "incomplete": samples["incomplete"],
        "ttft_ms": {f"p{q}": ms(pct(samples["ttft"], q)) for q in (50, 95, 99)},
        "gap_ms": {f"p{q}": ms(pct(samples["gaps"], q)) for q in (50, 99)},
        "total_ms": {"p50": ms(pct(samples["totals"], 50))},
        "runqueue_wait_ms": {name: round(samples["runqueue_wait_s"][name] * 1000) for name in PROCESSES},
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def write_outputs(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    (out / "bench.md").write_text(markdown(report))
    plot(report, out / "bench.png")


def markdown(report: dict) -> str:
    lines = [
        "| streams | tokens | ms/token | added TTFT p50 / p95 / p99 (ms) | added inter-token p99 (ms) "
        "| wait added p50 (ms) | CPU/token (µs) | errors | incomplete | CPU waits direct / chatwait (ms) | valid |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in report["cells"]:
        added = cell["added"]
        errors = sum(cell["errors"].values())
        incomplete = sum(cell.get("incomplete", {}).values())
        lines.append(
            f"| {cell['concurrency']} | {cell['tokens']} | {cell['delay_ms']:g} | "
            f"{added['ttft_p50_ms']} / {added['ttft_p95_ms']} / {added['ttft_p99_ms']} | {added['gap_p99_ms']} | "
            f"{added.get('wait_p50_ms', '–')} | {cell['cpu_per_token_us']} | {errors} | {incomplete} | "
            f"{_waits(cell, 'direct')} / {_waits(cell, 'chatwait')} | {'yes' if cell['valid'] else 'NO'} |"
        )
    for memory in report.get("memory", []):
        lines.append(
            f"\nMemory per open stream, {memory['streams']} streams of {memory['tokens']} tokens at "
            f"{memory['delay_ms']:g} ms/token, after {memory['held_seconds']} s: {memory['kb_per_stream']} KB "
            f"({memory['errors']} errors)."
        )
    growth = report.get("rss_growth")
    if growth:
        lines.append(
            f"\nRSS across {growth['requests']} sequential requests: {growth['rss_after_warmup_mb']} MB after warm-up, "
            f"{growth['rss_end_mb']} MB at the end ({growth['growth_percent']:+}%, {growth['errors']} errors)."
        )
    return "\n".join(lines) + "\n"


def _waits(cell: dict, arm: str) -> int:
    """Milliseconds the client, the fake and the worker spent waiting for a CPU in one arm."""
    return sum(cell["arms"][arm]["runqueue_wait_ms"].values())


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    series: dict[tuple[int, float], list[dict]] = {}
    for cell in report["cells"]:
        series.setdefault((cell["tokens"], cell["delay_ms"]), []).append(cell)
    for (tokens, delay), cells in sorted(series.items()):
        cells.sort(key=lambda c: c["concurrency"])
        x = [c["concurrency"] for c in cells]
        label = f"{tokens} tokens, {delay:g} ms"
        axes[0].plot(x, [c["added"]["ttft_p50_ms"] for c in cells], marker="o", label=f"p50, {label}")
        axes[0].plot(x, [c["added"]["ttft_p95_ms"] for c in cells], marker="x", linestyle="--", label=f"p95, {label}")
        axes[1].plot(x, [c["added"]["gap_p99_ms"] for c in cells], marker="o", label=label)
    for axis, title in zip(axes, ("Added time to first token (ms)", "Added inter-token p99 (ms)")):
        axis.set_xscale("log")
        axis.set_yscale("symlog", linthresh=1)
        axis.set_xlabel("concurrent streams")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("ChatWait overhead over a direct client (same fake upstream, same run)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,10,100,1000")
    parser.add_argument("--tokens", default="200,2000,10000")
    parser.add_argument("--delay-ms", dest="delay_ms", default="5,20")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--read-seconds", dest="read_seconds", type=float, default=6.0)
    parser.add_argument("--memory-streams", dest="memory_streams", type=int, default=1000, help="0 skips the memory probe")
    parser.add_argument("--memory-delay-ms", dest="memory_delay_ms", type=float, default=100.0)
    parser.add_argument("--sequential", type=int, default=10000, help="0 skips the RSS growth run")
    parser.add_argument(
        "--starts",
        choices=("steady", "aligned", "burst"),
        default="steady",
        help="steady: starts spread over one reply's length (N streams open at once), tokens at independent "
        "instants; aligned: the same without the per-stream phase shift; burst: all at once",
    )
    parser.add_argument("--quick", action="store_true", help="1/10/100 streams, 200 tokens, 20 ms; 2,000 sequential")
    parser.add_argument("--out", default="artifacts")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.tokens, args.delay_ms, args.sequential, args.memory_streams = (
            "1,10,100",
            "200",
            "20",
            2000,
            200,
        )

    bench = Bench(args)
    report: dict = {"arguments": vars(args), "cells": []}
    try:
        for arm in ARMS:  # warm-up: first connections, lazy imports, caches
            bench.run_arm(arm, 4, 5, 1)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for tokens in (int(t) for t in args.tokens.split(",")):
                for delay in (float(d) for d in args.delay_ms.split(",")):
                    cell = bench.cell(concurrency, tokens, delay)
                    report["cells"].append(cell)
                    print(
                        json.dumps(
                            {
                                k: cell[k]
                                for k in (
                                    "concurrency",
                                    "tokens",
                                    "delay_ms",
                                    "added",
                                    "cpu_per_token_us",
                                    "errors",
                                    "valid",
                                )
                            }
                        ),
                        flush=True,
                    )
        if args.memory_streams > 0:  # 0 skips the memory probe
            report["memory"] = [
                bench.memory_per_stream(args.memory_streams, tokens, 3.5, args.memory_delay_ms)
                for tokens in (200, 10000)
            ]
            print(json.dumps(report["memory"]), flush=True)
        if args.sequential > 0:  # 0 skips the RSS growth run
            report["rss_growth"] = bench.rss_growth(args.sequential)
            print(json.dumps(report["rss_growth"]), flush=True)
    finally:
        bench.stop()
    report["valid"] = all(cell["valid"] for cell in report["cells"])
    write_outputs(report, Path(args.out))
    print(markdown(report))
    print(f"wrote {args.out}/bench.json, bench.png, bench.md" + ("" if report["valid"] else "  (INVALID: see 'valid')"))


if __name__ == "__main__":
    main()
