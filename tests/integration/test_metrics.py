"""/metrics and /ready on real gunicorn servers: the metrics move through a scripted session
(wait, stream, resume, stop, upstream faults), sum over two workers and forget a killed one's
live gauges; the Grafana dashboard queries only metrics that exist; request logs of probes
follow LOG_REQUESTS; /ready names each failing dependency."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import ChatWaitServer, free_port
from harness.redis_servers import RedisServer

from ..conftest import FAKE_MODEL, completion_lines, server_env, store_env
from ..sse import iter_events, parse

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "monitoring" / "grafana-dashboard.json"
Samples = dict[tuple[str, frozenset], float]


def scrape(url: str) -> tuple[Samples, dict[str, str]]:
    """Every sample of /metrics by (name, labels), and each family's type by name."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def unique(directives: str) -> str:
    return f"metrics {uuid.uuid4().hex[:8]} {directives}"


@pytest.fixture(scope="module")
def watched(fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    """Its model priced (the cost series exist), the response cache on, the fake its one server."""
    listing = tmp_path_factory.mktemp("watched") / "upstreams.yaml"
    listing.write_text(f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n"
                       f"prices: {{{FAKE_MODEL}: {{input: 0.15, output: 0.6}}}}\n")  # fmt: skip
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing), LOG_REQUESTS="false", RESPONSE_CACHE="true"))
    asked = {"message": unique("Kept @tokens=2"), "temperature": 0}
    for _ in range(2):  # a miss and a hit: the cache's series exist
        assert httpx.post(f"{running.url}/v1/chat/wait", json=asked, timeout=30).status_code == 200
    yield running
    running.stop()


def test_a_scripted_session_moves_each_metric(watched) -> None:
    model = {"model": FAKE_MODEL, "provider": "openai"}
    before, _ = scrape(watched.url)
    with httpx.Client(base_url=watched.url, timeout=30) as http:
        assert http.post("/v1/chat/wait", json={"message": unique("@tokens=5")}).status_code == 200
        streamed = http.post("/v1/chat/streaming", json={"message": unique("@tokens=20")})
        stream_id = streamed.headers["x-stream-id"]
        assert http.get(f"/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": "3"}).status_code == 200
        with http.stream("POST", "/v1/chat/streaming", json={"message": unique("@tokens=500 @delay_ms=20")}) as live:
            events = iter_events(live)
            next(e for e in events if e.event == "chunk")
            during, _ = scrape(watched.url)
            path = f"/v1/chat/streaming/{live.headers['x-stream-id']}"
            assert http.delete(path).json()["status"] == "cancelled"
            assert http.delete(path).json()["status"] == "already_finished"
        faults = (("@fault=429 @retry_after=0 @fail_times=1", 200), ("@fault=500", 503), ("@fault=401", 502))
        for directives, status in faults:
            assert http.post("/v1/chat/wait", json={"message": unique(directives)}).status_code == status
        stalled = http.post("/v1/chat/streaming", json={"message": unique("@tokens=9 @fault=stall@3")})
        assert parse(stalled.content)[0][-1].data["error_code"] == "upstream_timeout"
        assert http.post("/v1/chat/wait", json={"message": "x", "model": "nope"}).status_code == 400
    after, _ = scrape(watched.url)

    def delta(name: str, **labels: str) -> float:
        return moved(before, after, name, **labels)

    assert delta("chatwait_streams_started_total", **model, mode="wait") == 4  # not the refused one
    assert delta("chatwait_streams_started_total", **model, mode="streaming") == 3
    assert delta("chatwait_streams_completed_total", **model, finish_reason="stop") == 3
    assert delta("chatwait_streams_cancelled_total", model=FAKE_MODEL) == 1
    assert delta("chatwait_streams_failed_total", model=FAKE_MODEL, error_code="upstream_unavailable") == 1
    assert delta("chatwait_streams_failed_total", model=FAKE_MODEL, error_code="upstream_auth_failed") == 1
    assert delta("chatwait_streams_failed_total", model=FAKE_MODEL, error_code="upstream_timeout") == 1
    assert delta("chatwait_upstream_retries_total", error_code="upstream_rate_limited") == 1
    assert delta("chatwait_upstream_retries_total", error_code="upstream_unavailable") == 2  # UPSTREAM_RETRIES=2
    assert delta("chatwait_upstream_errors_total", error_code="upstream_auth_failed") == 1
    assert delta("chatwait_upstream_errors_total", error_code="upstream_timeout") == 1
    assert delta("chatwait_stream_resumes_total", api="chatwait") == 1
    assert delta("chatwait_stream_stops_total", result="cancelled") == 1
    assert delta("chatwait_stream_stops_total", result="already_finished") == 1
    assert delta("chatwait_tokens_total", model=FAKE_MODEL, direction="out", source="upstream") >= 5 + 20
    assert delta("chatwait_tokens_total", model=FAKE_MODEL, direction="in", source="upstream") > 0
    assert delta("chatwait_first_token_seconds_count", **model) == 5  # the faults before a token have none
    assert delta("chatwait_stream_duration_seconds_count", **model) == 7
    wait_route = {"route": "/v1/chat/wait", "method": "POST"}
    assert delta("chatwait_http_requests_total", **wait_route, status="200") == 2
    assert delta("chatwait_http_requests_total", **wait_route, status="400") == 1
    stop_route = {"route": "/v1/chat/streaming/<stream_id>", "method": "DELETE"}
    assert delta("chatwait_http_requests_total", **stop_route, status="200") == 2
    assert ("chatwait_streams_open", frozenset({("mode", "streaming")})) in during
    assert during[("chatwait_streams_open", frozenset({("mode", "streaming")}))] == 1
    assert during[("chatwait_stream_followers", frozenset())] == 1
    assert after[("chatwait_streams_open", frozenset({("mode", "streaming")}))] == 0
    assert after[("chatwait_stream_followers", frozenset())] == 0
    assert after[("chatwait_store_streams", frozenset())] >= 1  # sampled each second


# Every upstream fault of the fake: (directives, error_code, retries before giving up).
FAULTS = [
    ("@fault=401", "upstream_auth_failed", 0),
    ("@fault=429 @retry_after=0", "upstream_rate_limited", 2),
    ("@fault=503", "upstream_unavailable", 2),
    ("@fault=reset@0", "upstream_interrupted", 2),
    ("@tokens=10 @fault=reset@4", "upstream_interrupted", 0),
    ("@tokens=10 @fault=nofinish", "upstream_interrupted", 0),
    ("@tokens=10 @fault=garbage@5", "upstream_bad_response", 0),
    ("@tokens=10 @fault=errorchunk@3", "upstream_interrupted", 0),
    ("@tokens=10 @fault=stall@6", "upstream_timeout", 0),
]


@pytest.mark.parametrize(("directives", "code", "retries"), FAULTS)
def test_each_upstream_fault_is_counted_once(watched, directives, code, retries) -> None:
    before, _ = scrape(watched.url)
    with httpx.Client(base_url=watched.url, timeout=30) as http:
        events, _ = parse(http.post("/v1/chat/streaming", json={"message": unique(directives)}).content)
    assert events[-1].event == "error" and events[-1].data["error_code"] == code
    after, _ = scrape(watched.url)
    assert moved(before, after, "chatwait_upstream_errors_total", error_code=code) == 1
    assert moved(before, after, "chatwait_streams_failed_total", model=FAKE_MODEL, error_code=code) == 1
    assert moved(before, after, "chatwait_upstream_retries_total", error_code=code) == retries
    assert after[("chatwait_streams_open", frozenset({("mode", "streaming")}))] == 0


def test_logs_carry_the_errors_words_and_the_gaps_but_no_probe_or_scrape_lines(watched) -> None:
    with httpx.Client(base_url=watched.url, timeout=30) as http:
        for path in ("/health", "/ready", "/metrics"):
            assert http.get(path, headers={"X-Correlation-Id": f"probe-{path[1:]}"}).status_code == 200
        for cid, directives in (("fault-401", "@fault=401"), ("gaps", "@tokens=30 @delay_ms=2")):
            http.post("/v1/chat/wait", json={"message": unique(directives)}, headers={"X-Correlation-Id": cid})
    records = watched.log_records()
    assert not [r for r in records if str(r.get("correlation_id", "")).startswith("probe-")]
    error = next(r for r in records if r.get("correlation_id") == "fault-401" and r["event"] == "error_occurred")
    assert error["error_message"] == "The model provider rejected this service's credentials."
    assert error["detail"] == "The model provider answered HTTP 401." and "OPENAI_API_KEY" in error["action"]
    completed = next(r for r in completion_lines(records) if r.get("correlation_id") == "gaps")
    assert 0 < completed["gap_p50_ms"] <= completed["gap_max_ms"]
    assert [r for r in records if r.get("correlation_id") == "gaps" and r["event"] == "request_received"]


def test_probe_requests_are_logged_by_default(server) -> None:
    httpx.get(f"{server.url}/health", headers={"X-Correlation-Id": "probe-default"}, timeout=10)
    httpx.get(f"{server.url}/metrics", headers={"X-Correlation-Id": "scrape-default"}, timeout=10)
    records = server.log_records()
    assert [r["event"] for r in records if r.get("correlation_id") == "probe-default"] == [
        "request_received",
        "request_completed",
    ]
    assert not [r for r in records if r.get("correlation_id") == "scrape-default"], "/metrics is never logged"


def test_every_metric_the_dashboard_queries_exists(watched) -> None:
    _, types = scrape(watched.url)
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    exposed = {name + suffix for name, kind in types.items() for suffix in suffixes.get(kind, ("",))}
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        word
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for word in re.findall(r"\bchatwait_[a-z_]+", target["expr"])
    }
    assert queried and queried <= exposed, sorted(queried - exposed)
    assert {name for name in types if name.startswith("chatwait_")} <= {
        name.removesuffix(s) for name in queried for s in ("_total", "_bucket", "_sum", "_count", "")
    }, "every metric is on the dashboard"


def _worker_of(server: ChatWaitServer, correlation_id: str) -> int:
    deadline = time.monotonic() + 10
    while True:
        found = [r["pid"] for r in server.log_records() if r.get("correlation_id") == correlation_id and "pid" in r]
        if found:
            return found[0]
        assert time.monotonic() < deadline, correlation_id
        time.sleep(0.05)


def _until_both_workers_served(server: ChatWaitServer, http: httpx.Client) -> int:
    """Send overlapping wait requests, 8 at a time, until both workers have answered some; how many were sent."""

    def post(cid: str) -> httpx.Response:
        return http.post("/v1/chat/wait", json={"message": "@tokens=5 @delay_ms=20"}, headers={"X-Correlation-Id": cid})

    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(10):
            ids = [f"spread-{sent + index}" for index in range(8)]
            assert all(reply.status_code == 200 for reply in pool.map(post, ids))
            sent += len(ids)
            if len({_worker_of(server, f"spread-{index}") for index in range(sent)}) == 2:
                return sent
    raise AssertionError(f"one worker answered all {sent} requests")


def test_two_workers_are_summed_and_a_killed_ones_live_gauges_dropped(request, fake, tmp_path) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"stale")  # an earlier run's file: removed at start
    env = server_env(fake.base_url, **store_env(request, "redis"), PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    server = ChatWaitServer(env)
    try:
        assert not (tmp_path / "counter_1.db").exists()
        fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection per request: both workers serve
        with httpx.Client(base_url=server.url, timeout=30, limits=fresh) as http:
            sent = _until_both_workers_served(server, http)
            for _ in range(6):  # any worker's scrape sums both
                samples, _ = scrape(server.url)
                labels = frozenset({("route", "/v1/chat/wait"), ("method", "POST"), ("status", "200")})
                assert samples[("chatwait_http_requests_total", labels)] == sent
            body = {"message": "@tokens=2000 @delay_ms=20"}
            with http.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": "held"}) as live:
                next(e for e in iter_events(live) if e.event == "chunk")
                open_streams = ("chatwait_streams_open", frozenset({("mode", "streaming")}))
                deadline = time.monotonic() + 20  # the other worker's scrape sees it once its gauges are sampled
                while scrape(server.url)[0].get(open_streams, 0) != 1:
                    assert time.monotonic() < deadline, "the open stream is never counted"
                    time.sleep(0.2)
                os.kill(_worker_of(server, "held"), signal.SIGKILL)
            deadline = time.monotonic() + 20
            while (samples := scrape(server.url)[0]).get(open_streams, 0) != 0:
                assert time.monotonic() < deadline, "the killed worker's open stream is still counted"
                time.sleep(0.2)
            assert samples[("chatwait_http_requests_total", labels)] == sent, "its counters stay in the sums"
    finally:
        server.stop()


def test_ready_names_an_unreachable_upstream(start_server) -> None:
    port = free_port()
    server = start_server(OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1")
    ready = httpx.get(f"{server.url}/ready", timeout=30)
    assert ready.status_code == 503 and ready.json()["failing"] == ["upstream"]
    assert ready.json()["checks"]["upstream"]["detail"] == (
        f"http://127.0.0.1:{port} (set by OPENAI_BASE_URL): Could not connect to the model provider. It is down "
        "or temporarily unavailable: check OPENAI_BASE_URL, and that the server is up."
    )
    assert ready.json()["checks"]["store"]["ok"] is True


def test_ready_names_a_store_that_is_down(fake) -> None:
    redis = RedisServer()
    server = ChatWaitServer(server_env(fake.base_url, STREAM_STORE="redis", REDIS_URL=redis.url, WEB_CONCURRENCY="1"))
    try:
        assert httpx.get(f"{server.url}/ready", timeout=30).json()["failing"] == []
        redis.stop()
        ready = httpx.get(f"{server.url}/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["failing"] == ["store"]
        assert "Redis did not answer" in ready.json()["checks"]["store"]["detail"]
        assert ready.json()["checks"]["upstream"]["ok"] is True
    finally:
        server.stop()
        redis.stop()


def test_every_label_is_bounded_whatever_clients_send(watched) -> None:
    """Made-up methods and paths do not make new series: the method is one of HTTP's (else
    `other`), the route a URL rule (else `unmatched`)."""
    before, _ = scrape(watched.url)
    with httpx.Client(base_url=watched.url, timeout=10) as client:
        for number in range(300):
            client.request(f"M{uuid.uuid4().hex[:10].upper()}", f"/made-up/{number}")
    after, _ = scrape(watched.url)
    requests = {labels for name, labels in after if name == "chatwait_http_requests_total"}
    methods = {dict(labels)["method"] for labels in requests}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods
    assert moved(before, after, "chatwait_http_requests_total", route="unmatched", method="other", status="404") == 300
    assert len(after) - len(before) < 10, "300 new methods and paths add at most a few series"


def test_reloads_do_not_grow_the_metrics_folder_and_keep_the_counts(fake, tmp_path) -> None:
    """Each exiting worker folds its counters into the folder's archive files: after several
    SIGHUPs the folder holds the live workers' files and the archive, and no count is lost."""
    env = server_env(fake.base_url, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    server = ChatWaitServer(env)
    labels = frozenset({("route", "/v1/chat/wait"), ("method", "POST"), ("status", "200")})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            sent = 0
            for _ in range(4):
                for _ in range(5):
                    assert http.post("/v1/chat/wait", json={"message": "@tokens=2"}).status_code == 200
                    sent += 1
                assert scrape(server.url)[0][("chatwait_http_requests_total", labels)] == sent
                booted = server.log_text().count('"service_started"')
                server.proc.send_signal(signal.SIGHUP)
                _until(lambda booted=booted: server.log_text().count('"service_started"') == booted + 2)
                _until(lambda: len(_worker_pids(tmp_path)) == 2)  # only the new workers have files
                shared = {f.name for f in tmp_path.glob("*.db") if not re.search(r"_\d+\.db$", f.name)}
                assert shared <= {"counter_archive.db", "histogram_archive.db"}, shared
            assert scrape(server.url)[0][("chatwait_http_requests_total", labels)] == sent
    finally:
        server.stop()


def _worker_pids(folder: Path) -> set[str]:
    """The pids that have files of their own in the metrics folder."""
    return {m.group(1) for f in folder.glob("*.db") if (m := re.search(r"_(\d+)\.db$", f.name))}


def _until(done, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)
