"""The benchmark's processes and measurements (bench.py has the command line and the method).

Imported by bench.py after gevent has patched: the client's streams are greenlets.
"""

from __future__ import annotations

import collections
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import psutil

from harness.processes import ROOT, ChatWaitServer, FakeUpstream
from harness.redis_servers import RedisServer
from load.bench_client import MARKERS, STOP_PATHS, one_stream, post_request
from load.bench_report import PROCESSES, SELF_CHECK_MS, added, cpu_per_token_us, diff, invalid_reason, summarise
from load.schedule import start_offsets
from load.variants import gunicorn_args

SERVER_ENV = {"OPENAI_API_KEY": "sk-bench", "OPENAI_MODEL": "fake-model", "MAX_STREAMS": "20000", "MAX_TOKENS": "20000"}


def cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """The server's CPU (the last one) and the load's (the others); None, None unpinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


BENCH_TOOL = {"type": "function", "function": {"name": "write", "parameters": {"type": "object",
              "properties": {"text": {"type": "string"}}, "required": ["text"]}}}  # fmt: skip


class Bench:
    """The fake upstream, the servers under test, and the measurements."""

    def __init__(self, pin: bool = True, starts: str = "steady", read_seconds: float = 6.0) -> None:
        self.server_cpus, self.load_cpus = cpu_split(pin)
        if self.load_cpus:
            os.sched_setaffinity(0, self.load_cpus)
        self.starts = starts
        self.read_seconds = read_seconds
        self.fake = FakeUpstream(cpus=self.load_cpus)
        self.fake2: FakeUpstream | None = None  # the pool arm's second server
        self.scratch = tempfile.TemporaryDirectory(prefix="chatwait-bench-")  # an arm's UPSTREAMS_FILE
        self.servers: dict[str, ChatWaitServer] = {}
        self.openai_arms: dict[str, str] = {}  # arm (openai, responses, tools[:FOLDER]) -> the server it uses
        self.otlp: Any = None  # the traced arm's OTLP receiver

    def pinning(self) -> dict[str, list[int] | None]:
        return {"server": _listed(self.server_cpus), "load": _listed(self.load_cpus)}

    def add_server(
        self, name: str, root: Path = ROOT, variant: str | None = None, worker_class: str | None = None, **env: str
    ) -> ChatWaitServer:
        """Start a server arm: ChatWait from `root`, a variant of it (load/variants.py), or another worker."""
        env = {"OPENAI_BASE_URL": self.fake.base_url, **SERVER_ENV, **env}
        if variant:
            env["CHATWAIT_VARIANT"] = variant
        if variant and "traced" in variant.split(","):
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp_endpoint()
        args = gunicorn_args(variant, worker_class)
        server = self.servers[name] = ChatWaitServer(env, root=root, cpus=self.server_cpus, args=args)
        server.master = psutil.Process(server.proc.pid)
        server.worker = server.master.children()[0]
        return server

    def add_checkouts(self, roots: list[Path]) -> list[str]:
        """Start `chatwait` (this tree) and `baseline:FOLDER` for each other checkout; the folders'
        names, this tree's first as "" (the suffix of an arm on a server's other endpoints)."""
        self.add_server("chatwait")
        folders = [""]
        for root in roots:
            folders.append(root.resolve().name)
            self.add_server(f"baseline:{folders[-1]}", root=root.resolve())
        return folders

    def add_redis_server(self, name: str = "redis", root: Path = ROOT, variant: str | None = None) -> ChatWaitServer:
        """A ChatWait arm on the Redis store (one worker), with a Redis of its own on the load's CPUs."""
        redis = RedisServer(cpus=self.load_cpus)
        env = {"STREAM_STORE": "redis", "REDIS_URL": redis.url, "WEB_CONCURRENCY": "1"}
        server = self.add_server(name, root=root, variant=variant, **env)
        server.redis = redis
        server.store = psutil.Process(redis.proc.pid)
        return server

    def add_pool_server(self, name: str = "pool") -> ChatWaitServer:
        """A ChatWait arm whose pool holds two servers: the fake and a second one on the load's CPUs."""
        self.fake2 = FakeUpstream(cpus=self.load_cpus)
        return self.add_server(name, OPENAI_BASE_URL=f"{self.fake.base_url},{self.fake2.base_url}")

    def add_anthropic_server(self, name: str = "anthropic") -> ChatWaitServer:
        """A ChatWait arm whose one server is the fake spoken to as a Messages API server."""
        listing = Path(self.scratch.name) / "upstreams.toml"
        listing.write_text(
            f'[[upstream]]\nname = "fake-messages"\nurl = "{self.fake.base_url}"\nkind = "anthropic"\n'
            'models = ["fake-model"]\n'
        )
        return self.add_server(name, OPENAI_BASE_URL="", UPSTREAMS_FILE=str(listing))

    def otlp_endpoint(self) -> str:
        """An OTLP receiver of the bench's own (in this process, on the load's CPUs), once."""
        if self.otlp is None:
            from harness.otlp_receiver import OtlpReceiver

            self.otlp = OtlpReceiver()
        return self.otlp.endpoint

    def stop(self) -> None:
        if self.otlp is not None:
            self.otlp.stop()
        for server in self.servers.values():
            server.stop()
            if getattr(server, "redis", None) is not None:
                server.redis.stop()
        self.fake.stop()
        if self.fake2 is not None:
            self.fake2.stop()
        self.scratch.cleanup()

    def warm_up(self) -> None:
        """First connections, lazy imports, caches: a few short streams on every arm."""
        for target in ("direct", *self.servers, *self.openai_arms):
            self.run_arm(target, True, 4, 5, 1)
        self.run_arm("direct", False, 4, 5, 1)
        self.run_arm("chatwait", False, 4, 5, 1)

    def run_arm(self, target: str, streaming: bool, concurrency: int, tokens: int, delay_ms: float) -> dict:
        """`concurrency` requests to `target` (direct, or a server's name), started as `starts` says."""
        port, request, marker, stop_path = self.request_for(target, streaming, tokens, delay_ms)
        marker = marker if streaming else b""
        read_seconds = self.read_seconds if streaming else None
        deadline = 60 + tokens * delay_ms / 1000 * 2
        reply_seconds = tokens * delay_ms / 1000
        spread = min(reply_seconds, read_seconds or reply_seconds)
        offsets = start_offsets(self.starts, concurrency, spread, delay_ms / 1000)
        server = self.servers.get(self.openai_arms.get(target, target), next(iter(self.servers.values())))
        worker, store = server.worker, getattr(server, "store", None) if target != "direct" else None
        cpu_before, waits_before = tree_cpu_seconds(server.master), self.runqueue_waits(worker.pid)
        store_before = cpu_seconds(store)
        jobs = [
            gevent.spawn(one_stream, port, request, marker, deadline, read_seconds, at, stop_path) for at in offsets
        ]
        gevent.joinall(jobs, timeout=deadline + 10)
        cpu_after = tree_cpu_seconds(server.master)
        store_cpu = cpu_seconds(store) - store_before
        waits = collections.Counter(self.runqueue_waits(worker.pid))
        waits.subtract(waits_before)
        results = [job.value or {"ok": False, "arrivals": [], "total": None} for job in jobs]
        self.settle(worker)
        expected = None if read_seconds and reply_seconds > read_seconds else tokens
        relayed = sum(len(r["arrivals"]) for r in results)
        return {
            "errors": sum(1 for r in results if not r["ok"]),
            "incomplete": sum(1 for r in results if r["ok"] and marker and expected and len(r["arrivals"]) != expected),
            "ttft": [r["arrivals"][0] for r in results if r["arrivals"]],
            "gaps": [b - a for r in results for a, b in zip(r["arrivals"], r["arrivals"][1:], strict=False)],
            "totals": [r["total"] for r in results if r["total"] is not None and r["ok"]],
            "tokens": relayed,
            "cpu": cpu_after - cpu_before,
            "store_cpu": store_cpu,
            "runqueue_wait_s": waits,
        }

    def request_for(self, target: str, streaming: bool, tokens: int, delay_ms: float) -> tuple[int, bytes, bytes, str]:
        """The port, request bytes, token marker and stop path of one request of an arm: a chat
        completion to the fake (direct) or to ChatWait's OpenAI-compatible endpoint, a response
        (ChatWait's Responses API), a message (its Anthropic Messages API), or its native API."""
        message = f"bench @tokens={tokens} @delay_ms={delay_ms}"
        family = target.split(":", 1)[0] if target in self.openai_arms else target  # `responses:FOLDER` too
        if family == "responses":
            body = {"model": "fake-model", "input": message, "max_output_tokens": tokens, "stream": streaming}
            port = self.servers[self.openai_arms[target]].port
            return port, post_request("/v1/responses", body), MARKERS["responses"], STOP_PATHS["responses"]
        if family == "messages":
            body = {"model": "fake-model", "max_tokens": tokens, "stream": streaming}
            body["messages"] = [{"role": "user", "content": message}]
            port = self.servers[self.openai_arms[target]].port
            return port, post_request("/v1/messages", body), MARKERS["messages"], STOP_PATHS["messages"]
        if target == "direct" or target in self.openai_arms:
            body = {"model": "fake-model", "messages": [{"role": "user", "content": message}], "max_tokens": tokens}
            if streaming:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            kind = "tools" if family == "tools" else "openai"
            if kind == "tools":  # one tool call: its start, then tokens - 1 pieces of arguments, as far apart
                body["messages"][0]["content"] = f"{message} @tool_calls=1 @argpieces={max(3, tokens - 1)}"
                body["tools"] = [BENCH_TOOL]
            request = post_request("/v1/chat/completions", body)
            if target == "direct":
                return self.fake.port, request, MARKERS["direct"], STOP_PATHS["chatwait"]
            return self.servers[self.openai_arms[target]].port, request, MARKERS[kind], STOP_PATHS[kind]
        path = "/v1/chat/streaming" if streaming else "/v1/chat/wait"
        request = post_request(path, {"message": message, "max_tokens": tokens})
        return self.servers[target].port, request, MARKERS["chatwait"], STOP_PATHS["chatwait"]

    def runqueue_waits(self, worker_pid: int) -> dict[str, float]:
        """Seconds this client, the fake and the worker have spent runnable but not running,
        waiting for a CPU (Linux schedstat): how much they got in each other's way."""
        pids = (os.getpid(), self.fake.proc.pid, worker_pid)
        return {name: _runqueue_wait(pid) for name, pid in zip(PROCESSES, pids, strict=True)}

    def settle(self, worker: psutil.Process, limit_seconds: float = 120.0) -> None:
        """Wait until the worker is idle again, so that one arm's backlog never slows the next."""
        deadline = time.monotonic() + limit_seconds
        worker.cpu_percent()
        while time.monotonic() < deadline:
            gevent.sleep(0.5)
            if worker.cpu_percent() < 5:
                return

    def cell(self, concurrency: int, tokens: int, delay_ms: float, rounds: int, wait_arms: bool) -> dict:
        """Every arm, `rounds` times alternately (the servers' order rotating); pooled and per round."""
        servers = [*self.servers, *self.openai_arms]
        arms = [("direct", True), *((name, True) for name in servers)]
        if wait_arms:
            arms += [("direct", False), ("chatwait", False)]
        pooled = {_arm(t, s): _empty() for t, s in arms}
        per_round: dict[str, list[dict]] = {name: [] for name in servers}
        for index in range(rounds):
            shift = index % len(servers)
            order = [arms[0], *arms[1 + shift : 1 + len(servers)], *arms[1 : 1 + shift], *arms[1 + len(servers) :]]
            samples = {_arm(t, s): self.run_arm(t, s, concurrency, tokens, delay_ms) for t, s in order}
            for arm, sample in samples.items():
                for key, value in sample.items():
                    pooled[arm][key] += value
            direct = summarise(_pool([samples["direct"]]))
            for name in servers:
                own = summarise(_pool([samples[name]]))
                per_round[name].append(
                    {
                        "ttft_p50_ms": diff(own["ttft_ms"]["p50"], direct["ttft_ms"]["p50"]),
                        "gap_p99_ms": diff(own["gap_ms"]["p99"], direct["gap_ms"]["p99"]),
                        "cpu_per_token_us": cpu_per_token_us(samples[name]),
                        "store_cpu_per_token_us": cpu_per_token_us(samples[name], "store_cpu"),
                    }
                )
        return self._cell_report(concurrency, tokens, delay_ms, pooled, per_round)

    def _cell_report(
        self, concurrency: int, tokens: int, delay_ms: float, pooled: dict, per_round: dict[str, list[dict]]
    ) -> dict:
        summary = {arm: summarise(samples) for arm, samples in pooled.items()}
        servers = {
            name: {"added": added(summary[name], summary["direct"]), "cpu_per_token_us": cpu_per_token_us(pooled[name])}
            | {"store_cpu_per_token_us": cpu_per_token_us(pooled[name], "store_cpu"), "rounds": rounds}
            for name, rounds in per_round.items()
        }
        if "chatwait_wait" in summary:
            wait = summary["chatwait_wait"]["total_ms"]["p50"]
            servers["chatwait"]["wait_p50_ms"] = diff(wait, summary["direct_wait"]["total_ms"]["p50"])
        direct_gap = summary["direct"]["gap_ms"]["p99"]
        valid = concurrency > 100 or direct_gap is None or tokens < 2 or direct_gap - delay_ms <= SELF_CHECK_MS
        why = None if valid else invalid_reason(direct_gap, delay_ms)
        return {
            "concurrency": concurrency,
            "tokens": tokens,
            "delay_ms": delay_ms,
            "arms": summary,
            "servers": servers,
            "errors": {arm: s["errors"] for arm, s in summary.items()},
            "incomplete": {arm: s["incomplete"] for arm, s in summary.items()},
            "valid": valid,
            "invalid_reason": why,
        }

    def memory_per_stream(self, streams: int, tokens: int, hold_seconds: float, delay_ms: float) -> dict:
        """Worker RSS with `streams` open (mid-reply, after `hold_seconds`) minus idle, over `streams`."""
        server = self.servers["chatwait"]
        gevent.sleep(1)
        idle = server.worker.memory_info().rss
        request = post_request("/v1/chat/streaming", {"message": f"mem @tokens={tokens} @delay_ms={delay_ms}"})
        marker = MARKERS["chatwait"]
        jobs = [gevent.spawn(one_stream, server.port, request, marker, 120, hold_seconds) for _ in range(streams)]
        gevent.sleep(hold_seconds - 0.5)
        loaded = server.worker.memory_info().rss
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
        """RSS after a warm-up tenth of `requests` sequential requests, and after all of them, on a
        server whose finished streams expire after 2 s (kept for resumes by design, not growth)."""
        server = self.add_server("rss", STREAM_TTL_SECONDS="2")
        try:
            request = post_request("/v1/chat/streaming", {"message": "leak @tokens=5", "max_tokens": 5})
            errors = rss_warm = 0
            for index in range(requests):
                result = one_stream(server.port, request, MARKERS["chatwait"], 30)
                errors += not (result["ok"] and len(result["arrivals"]) == 5)
                if index + 1 == requests // 10:
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
            self.servers.pop("rss").stop()


def _arm(target: str, streaming: bool) -> str:
    if target == "direct":
        return "direct" if streaming else "direct_wait"
    return target if streaming else f"{target}_wait"


def _empty() -> dict:
    return {"errors": 0, "incomplete": 0, "ttft": [], "gaps": [], "totals": [], "tokens": 0, "cpu": 0.0} | {
        "store_cpu": 0.0,
        "runqueue_wait_s": collections.Counter(),
    }


def _pool(samples: list[dict]) -> dict:
    pooled = _empty()
    for sample in samples:
        for key, value in sample.items():
            pooled[key] += value
    return pooled


def cpu_seconds(process: psutil.Process | None) -> float:
    """CPU seconds a process has used so far, to the nanosecond (Linux schedstat, all its
    threads; psutil's 10 ms ticks where there is none); 0 without a process."""
    if process is None:
        return 0.0
    ran = _schedstat(process.pid, 0)
    if ran is None:
        times = process.cpu_times()
        return times.user + times.system
    return ran


def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU seconds of a server's whole process tree (gunicorn's master and its workers): what
    an operator pays, not one worker's share."""
    total = cpu_seconds(root)
    with contextlib.suppress(psutil.Error):
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += cpu_seconds(child)
    return total


def _listed(cpus: set[int] | None) -> list[int] | None:
    return None if cpus is None else sorted(cpus)


def _runqueue_wait(pid: int) -> float:
    return _schedstat(pid, 1) or 0.0


def _schedstat(pid: int, field: int) -> float | None:
    """Seconds summed over a process's threads: field 0 on a CPU, 1 waiting for one (None
    without schedstats)."""
    total, found = 0, False
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[field])
            found = True
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended, or a kernel without schedstats
    return total / 1e9 if found else None
