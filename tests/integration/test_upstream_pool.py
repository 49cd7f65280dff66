"""A pool of model servers, against real HTTP servers: two fake upstreams, and servers that answer
503 or 429 to everything or never answer (harness/upstream_servers.py). Both stores, 2 workers: each
worker learns health on its own, so "a few" requests reach a sick server (one per worker per rest).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import FakeUpstream, free_port
from harness.upstream_servers import SwitchServer

from ..conftest import completion_lines
from ..sse import content_of, expected_reply, parse

pytestmark = pytest.mark.integration


@pytest.fixture
def switch() -> Iterator[Callable[..., SwitchServer]]:
    made: list[SwitchServer] = []

    def start(mode: str, target_port: int | None = None) -> SwitchServer:
        made.append(SwitchServer(mode, target_port))
        return made[-1]

    yield start
    for server in made:
        server.close()


def _pool(*urls: str, **env: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": ",".join(urls), "WEB_CONCURRENCY": "2", **env}


def _served(upstream: FakeUpstream, tag: str) -> int:
    """Requests of this test (messages starting with `tag`) that `upstream` answered."""
    return sum(1 for o in upstream.stats()["outcomes"] if o["message"].startswith(tag) and o["how"] == "completed")


def _wait(http: httpx.Client, message: str, **body: object) -> httpx.Response:
    return http.post("/v1/chat/wait", json={"message": message, **body})


def _stream(url: str, message: str) -> str:
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.post("/v1/chat/streaming", json={"message": message})
        assert response.status_code == 200, response.text
        events, _ = parse(response.content)
    assert events[-1].event == "done", events[-1]
    return content_of(events)


def test_streams_spread_over_two_servers_all_exact(start_store_server, fake, fake2) -> None:
    server = start_store_server(**_pool(fake.base_url, fake2.base_url))
    tag = f"spread-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=40) as pool:
        replies = list(pool.map(lambda n: _stream(server.url, f"{tag} {n} @tokens=30 @delay_ms=20"), range(40)))
    assert replies == [expected_reply(30)] * 40
    first, second = _served(fake, tag), _served(fake2, tag)
    assert first + second == 40 and min(first, second) >= 10, (first, second)
    records = completion_lines(server.log_records())
    names = {f"127.0.0.1:{fake.port}", f"127.0.0.1:{fake2.port}"}
    assert len(records) == 40 and {r.get("upstream_server") for r in records} == names


def test_a_server_killed_mid_run_leaves_every_later_request_to_the_other(start_store_server, fake) -> None:
    doomed = FakeUpstream()
    try:
        server = start_store_server(**_pool(fake.base_url, doomed.base_url, UPSTREAM_REST_SECONDS="30"))
        tag = f"kill-{uuid.uuid4().hex[:8]}"
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for n in range(16):  # ties are random: both take some (all on one: a chance of 2 in 65,536)
                assert _wait(http, f"{tag} a{n} @tokens=3").status_code == 200
            assert _served(doomed, tag) > 0  # both took requests before
            doomed.stop()
            before = _served(fake, tag)
            with ThreadPoolExecutor(max_workers=8) as pool:
                later = list(pool.map(lambda n: _wait(http, f"{tag} b{n} @tokens=3"), range(24)))
        assert [r.status_code for r in later] == [200] * 24, [r.text for r in later if r.status_code != 200]
        assert all(r.json()["content"] == expected_reply(3) for r in later)
        assert _served(fake, tag) - before == 24
    finally:
        doomed.stop()


@pytest.mark.parametrize("answer", ["status:503", "status:429:2"])
def test_a_failing_server_is_rested_then_taken_back(start_store_server, fake, fake2, switch, answer) -> None:
    sick = switch(answer, fake2.port)
    server = start_store_server(**_pool(fake.base_url, sick.base_url, UPSTREAM_REST_SECONDS="2"))
    tag = f"rest-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        replies = [_wait(http, f"{tag} {n} @tokens=2") for n in range(20)]
        assert [r.status_code for r in replies] == [200] * 20  # every failure went over to the other
        # Rested: one request per worker, and a probe now and then after a rest ends (2 s, doubling).
        assert 1 <= sick.answered <= 8, sick.answered
        sick.mode = "pass"  # it recovers: requests reach fake2 through it
        deadline = time.monotonic() + 30
        while _served(fake2, tag) < 3 and time.monotonic() < deadline:
            assert _wait(http, f"{tag} back {uuid.uuid4().hex[:6]} @tokens=2").status_code == 200
            time.sleep(0.2)
    assert _served(fake2, tag) >= 3, "taken back after its rest"
    assert any(r.get("event") == "upstream_recovered" for r in server.log_records())


@pytest.mark.parametrize("attempt_seconds", [None, "0.5"])
def test_a_server_that_never_answers_is_skipped(start_store_server, fake, switch, attempt_seconds) -> None:
    """Once the first-token deadline passed, it rests; with UPSTREAM_ATTEMPT_SECONDS under
    TIMEOUT_SECONDS, the request that met it goes on to the other server instead of failing."""
    silent = switch("silent")
    env = _pool(fake.base_url, silent.base_url, TIMEOUT_SECONDS="1.5", UPSTREAM_REST_SECONDS="60")
    if attempt_seconds is not None:
        env.update(TIMEOUT_SECONDS="5", UPSTREAM_ATTEMPT_SECONDS=attempt_seconds)
    server = start_store_server(**env)
    tag = f"silent-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = [_wait(http, f"{tag} {n} @tokens=2") for n in range(16)]
    failed = [r for r in answers if r.status_code != 200]
    assert all(r.status_code == 504 and r.json()["error_code"] == "upstream_timeout" for r in failed)
    assert 1 <= silent.silenced <= 2  # met once per worker at most, then it rests
    assert len(failed) == (silent.silenced if attempt_seconds is None else 0)
    assert all(r.json()["content"] == expected_reply(2) for r in answers if r.status_code == 200)
    rested = [r for r in server.log_records() if r.get("event") == "upstream_rested"]
    assert rested and all(r["failure"] == "timeout" for r in rested)


def test_each_model_goes_to_the_servers_that_serve_it(start_store_server, fake, fake2, tmp_path: Path) -> None:
    listing = tmp_path / "upstreams.toml"
    listing.write_text(
        f'[[upstream]]\nname = "big"\nurl = "{fake.base_url}"\nmodels = ["fake-model"]\nweight = 2\n\n'
        f'[[upstream]]\nname = "small"\nurl = "{fake2.base_url}"\nmodels = ["other-model"]\n'
        'api_key_env = "SMALL_KEY"\n'
    )
    env = {"UPSTREAMS_FILE": str(listing), "OPENAI_BASE_URL": "", "SMALL_KEY": "sk-small-0123456789abcdef"}
    server = start_store_server(WEB_CONCURRENCY="2", ALLOWED_MODELS="", OPENAI_MODEL="", **env)
    tag = f"model-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for n in range(6):
            assert _wait(http, f"{tag} big {n} @tokens=2", model="fake-model").status_code == 200
            assert _wait(http, f"{tag} small {n} @tokens=2", model="other-model").status_code == 200
        ready = http.get("/ready").json()
    assert _served(fake, f"{tag} big") == 6 and _served(fake, f"{tag} small") == 0
    assert _served(fake2, f"{tag} small") == 6 and _served(fake2, f"{tag} big") == 0
    assert ready["allowed_models"] == ["fake-model", "other-model"]
    assert [(s["name"], s["models"], s["weight"]) for s in ready["servers"]] == [
        ("big", ["fake-model"], 2.0),
        ("small", ["other-model"], 1.0),
    ]
    assert "sk-small" not in server.log_text()


def test_a_model_its_server_does_not_list_makes_ready_503_naming_it(start_store_server, fake, tmp_path: Path) -> None:
    """A typo in the configuration fails /ready, so that a deploy carrying it stops there; the
    fake lists fake-model and other-model (its GET /models), as vLLM lists what it serves."""
    listing = tmp_path / "upstreams.toml"
    listing.write_text(
        f'[[upstream]]\nname = "vllm"\nurl = "{fake.base_url}"\nmodels = ["fake-model", "other-modle"]\n'
    )
    server = start_store_server(UPSTREAMS_FILE=str(listing), OPENAI_BASE_URL="", ALLOWED_MODELS="", OPENAI_MODEL="")
    ready = httpx.get(f"{server.url}/ready", timeout=10)
    body = ready.json()
    assert ready.status_code == 503 and body["failing"] == ["upstream"]
    assert (
        "'other-modle' is not in the models listed by vllm (GET /models): check the name."
        in body["checks"]["upstream"]["detail"]
    )
    assert [(r["model"], r["state"]) for r in body["routes"]] == [
        ("fake-model", "serving"),
        ("other-modle", "unlisted"),
    ]


def test_an_unreachable_server_is_named_with_the_setting_that_points_at_it(start_store_server, tmp_path: Path) -> None:
    listing = tmp_path / "upstreams.toml"
    listing.write_text(f'[[upstream]]\nname = "gpu-1"\nurl = "http://127.0.0.1:{free_port()}/v1"\n')
    server = start_store_server(UPSTREAMS_FILE=str(listing), OPENAI_BASE_URL="", ALLOWED_MODELS="")
    detail = httpx.get(f"{server.url}/ready", timeout=10).json()["checks"]["upstream"]["detail"]
    assert "(set by the url of UPSTREAMS_FILE entry 1 (gpu-1)): Could not connect" in detail, detail
    assert "check the url of UPSTREAMS_FILE entry 1 (gpu-1), and that the server is up" in detail, detail


def test_every_server_down_answers_503_with_retry_after(start_store_server, switch) -> None:
    first, second = switch("status:503"), switch("status:503")
    server = start_store_server(**_pool(first.base_url, second.base_url, UPSTREAM_REST_SECONDS="20"))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = [_wait(http, f"down {n}") for n in range(4)]
        streamed = http.post("/v1/chat/streaming", json={"message": "down stream"})
        openai_answer = http.post(
            "/v1/chat/completions", json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
        )
        ready = http.get("/ready")
    for answer in [*answers, streamed]:
        assert answer.status_code == 503 and answer.json()["error_code"] == "upstream_unavailable", answer.text
        assert 1 <= int(answer.headers["retry-after"]) <= 20
    # Once both rest, nothing is sent: no more than one request per server per worker reached them.
    assert first.answered + second.answered <= 4 * 2
    assert streamed.headers["content-type"].startswith("application/json")  # refused before any stream
    assert openai_answer.status_code == 503 and openai_answer.json()["error"]["code"] == "upstream_unavailable"
    assert ready.status_code == 503 and "upstream" in ready.json()["failing"]


def test_ready_and_metrics_show_each_server(start_store_server, fake, switch) -> None:
    sick = switch("status:503")
    server = start_store_server(**_pool(fake.base_url, sick.base_url, UPSTREAM_REST_SECONDS="60"))
    sick_state = None
    with httpx.Client(base_url=server.url, timeout=30) as http:
        # Each worker rests the sick server once a request of its own met it (routing ties are
        # random, and a connection may land on either worker): ask until the answering one has.
        for n in range(40):
            assert _wait(http, f"ready {n} @tokens=2").status_code == 200
            ready = http.get("/ready")
            sick_state = next(s["state"] for s in ready.json()["servers"] if s["name"].endswith(f":{sick.port}"))
            if sick_state == "resting":
                break
        metrics = http.get("/metrics").text
    assert sick_state == "resting"
    body = ready.json()
    assert ready.status_code == 200 and body["checks"]["upstream"]["ok"], body  # fake-model has a healthy server
    servers = {s["name"]: s for s in body["servers"]}
    healthy, resting = servers[f"127.0.0.1:{fake.port}"], servers[f"127.0.0.1:{sick.port}"]
    assert healthy["state"] == "healthy" and healthy["ok"] and healthy["url"] == f"http://127.0.0.1:{fake.port}"
    assert not resting["ok"] and "503" in resting["detail"]
    assert resting["state"] == "resting" and resting["rest_seconds"] > 0  # this worker got its 503
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    for name in servers:
        assert samples[("chatwait_upstream_server_requests_total", (("server", name),))] >= 1
    sick_name = ("server", f"127.0.0.1:{sick.port}")
    assert samples[("chatwait_upstream_server_failures_total", (("kind", "unavailable"), sick_name))] >= 1
    assert samples[("chatwait_upstream_server_resting", (sick_name,))] == 1
    assert "CANARY" not in ready.text and "CANARY" not in metrics
