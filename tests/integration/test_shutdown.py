"""A worker that stops (SIGTERM on deploy, SIGHUP's reload) leaves no client without an ending:
generations that can finish within GUNICORN_GRACEFUL_TIMEOUT finish; the others end with one
terminal service_restarting error, their partial text kept; wait requests get a 503 that says
when to retry."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from ..rawhttp import connect, read_until_close, responses
from ..sse import content_of, expected_reply, parse

pytestmark = [pytest.mark.integration, pytest.mark.both_stores("start_server")]  # on both stores


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


class Clients:
    """Streaming and wait requests, each read to its end in its own thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.results: dict[str, Any] = {}
        self.started: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    def stream(self, name: str, message: str) -> None:
        self._start(name, self._read_stream, message)

    def wait(self, name: str, message: str) -> None:
        self._start(name, self._read_wait, message)

    def _start(self, name: str, target: Any, message: str) -> None:
        self.started[name] = threading.Event()
        thread = threading.Thread(target=target, args=(name, message), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_stream(self, name: str, message: str) -> None:
        with (
            httpx.Client(timeout=60, headers=self.headers) as client,
            client.stream("POST", f"{self.url}/v1/chat/streaming", json={"message": message}) as response,
        ):
            body = b""
            for block in response.iter_raw():
                body += block
                if b"event: chunk" in body:
                    self.started[name].set()
        self.results[name] = parse(body)[0]

    def _read_wait(self, name: str, message: str) -> None:
        self.started[name].set()
        self.results[name] = httpx.post(
            f"{self.url}/v1/chat/wait", json={"message": message}, headers=self.headers, timeout=60
        )

    def all_started(self, timeout: float = 30) -> None:
        for event in self.started.values():
            assert event.wait(timeout)

    def join(self, timeout: float = 60) -> None:
        for thread in self._threads:
            thread.join(timeout)
        assert len(self.results) == len(self._threads), "every client got an ending"


def _one_terminal(events: list) -> Any:
    terminal = [e for e in events if e.event in ("done", "error")]
    assert terminal == [events[-1]], [e.event for e in events[-3:]]
    chunks = [e for e in events if e.event == "chunk"]
    assert events[-1].data["last_sequence"] == len(chunks)
    assert content_of(events) == expected_reply(len(chunks)), "the partial reply is intact"
    return events[-1]


def test_sigterm_with_fifty_open_streams(start_server) -> None:
    running = start_server(GUNICORN_GRACEFUL_TIMEOUT="5")
    clients = Clients(running.url)
    for index in range(45):
        clients.stream(f"long{index}", _unique("@tokens=3000 @delay_ms=20"))  # a minute of reply
    for index in range(5):
        clients.stream(f"short{index}", _unique("@tokens=60 @delay_ms=25"))  # 1.5 s: finishes in the grace
    clients.wait("wait", _unique("@tokens=3000 @delay_ms=20"))
    clients.all_started()
    time.sleep(0.3)
    stopped_at = time.monotonic()
    running.proc.send_signal(signal.SIGTERM)
    clients.join()
    running.proc.wait(15)
    assert time.monotonic() - stopped_at < 10

    for index in range(5):
        done = _one_terminal(clients.results[f"short{index}"])
        assert done.event == "done" and done.data["finish_reason"] == "stop"
    for index in range(45):
        error = _one_terminal(clients.results[f"long{index}"])
        assert error.event == "error" and error.data["error_code"] == "service_restarting"
        assert error.data["retryable"] is True and error.data["retry_after_seconds"] >= 1
        assert 0 < error.data["last_sequence"] < 3000
    wait = clients.results["wait"]
    assert wait.status_code == 503 and wait.json()["error_code"] == "service_restarting"
    assert int(wait.headers["retry-after"]) >= 1
    if running.env["STREAM_STORE"] == "redis":
        _resumable_after_restart(start_server(), [clients.results[name] for name in clients.started if name != "wait"])


def _resumable_after_restart(restarted: Any, streams: list[list[Any]]) -> None:
    """With Redis, every stream ended by the stop replays whole from the next deployment (its
    events; keepalive comments are the connection's, not the stream's)."""
    with httpx.Client(base_url=restarted.url, timeout=30) as client:
        for events in streams:
            replay = client.get(f"/v1/chat/streaming/{events[0].data['stream_id']}")
            assert replay.status_code == 200 and _events(parse(replay.content)[0]) == _events(events)


def _events(events: list[Any]) -> list[Any]:
    return [event for event in events if event.event != ":comment"]


def test_sighup_reload_ends_the_old_workers_streams_and_the_new_worker_serves(start_server) -> None:
    running = start_server(GUNICORN_GRACEFUL_TIMEOUT="3")
    clients = Clients(running.url)
    for index in range(5):
        clients.stream(f"long{index}", _unique("@tokens=3000 @delay_ms=20"))
    clients.all_started()
    running.proc.send_signal(signal.SIGHUP)
    clients.join()
    for index in range(5):
        assert _one_terminal(clients.results[f"long{index}"]).data["error_code"] == "service_restarting"
    with httpx.Client(base_url=running.url, timeout=30) as client:
        events, _ = parse(client.post("/v1/chat/streaming", json={"message": "after @tokens=3"}).content)
    assert events[-1].event == "done" and content_of(events) == expected_reply(3)
    assert running.proc.poll() is None, "the master carries on with its new worker"


def test_sighup_with_a_bad_key_file_keeps_the_running_configuration(start_server, tmp_path) -> None:
    """A reload whose configuration is bad is refused: the master carries on, the log names the
    variable (never the key), the new workers keep the running keys, and every stream gets its
    one ending. Once the file is fixed, the next SIGHUP applies it."""
    keys = tmp_path / "keys"
    good, later = "k" * 24, "n" * 24
    keys.write_text(f"{good}\n")
    running = start_server(CHATWAIT_API_KEYS_FILE=str(keys), GUNICORN_GRACEFUL_TIMEOUT="3")
    auth = {"Authorization": f"Bearer {good}"}
    clients = Clients(running.url, auth)
    clients.stream("long", _unique("@tokens=3000 @delay_ms=20"))
    clients.all_started()
    keys.write_text(f"{good}\nsk-tooshort\n")
    running.proc.send_signal(signal.SIGHUP)
    clients.join()
    _one_terminal(clients.results["long"])
    refused = _logged(running, "config_reload_refused")
    assert refused and "CHATWAIT_API_KEYS_FILE" in refused[0]["detail"], running.log_text()[-3000:]
    assert "sk-tooshort" not in running.log_text()
    assert running.proc.poll() is None, "the master carries on"
    with httpx.Client(base_url=running.url, timeout=30) as client:
        _until_answered(client, auth)  # the new workers, with the running keys
        keys.write_text(f"{later}\n")
        running.proc.send_signal(signal.SIGHUP)
        _until_answered(client, {"Authorization": f"Bearer {later}"})
        assert client.post("/v1/chat/wait", json={"message": "@tokens=2"}, headers=auth).status_code == 401


def _logged(server: Any, event: str) -> list[dict[str, Any]]:
    return [record for record in server.log_records() if record.get("event") == event]


def _until_answered(client: httpx.Client, headers: dict[str, str], seconds: float = 30) -> None:
    """Send a wait request with `headers` until a worker answers it with 200 (a reload takes a moment)."""
    deadline = time.monotonic() + seconds
    while (reply := client.post("/v1/chat/wait", json={"message": "@tokens=2"}, headers=headers)).status_code != 200:
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.2)


def test_on_sigterm_a_worker_refuses_new_generations_at_once_and_says_when_to_retry(start_server) -> None:
    """From SIGTERM on, a request that arrives on a connection opened before gets 503
    service_restarting with Retry-After and Connection: close; /ready fails on `worker`; a
    resume of a running stream is still served, and the stream gets its one ending."""
    running = start_server(GUNICORN_GRACEFUL_TIMEOUT="5")
    clients = Clients(running.url)
    clients.stream("long", _unique("@tokens=300 @delay_ms=20"))
    clients.all_started()
    opened = [connect(running.port) for _ in range(8)]
    try:
        pid, mine = _a_worker_and_its_connections(running, opened)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.25)
        body = b'{"message": "after the signal @tokens=3"}'
        mine[0].sendall(
            b"POST /v1/chat/streaming HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        mine[1].sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        refused, ready = (responses(read_until_close(sock))[0] for sock in mine[:2])
    finally:
        for sock in opened:
            sock.close()
    assert refused.status == 503 and refused.json()["error_code"] == "service_restarting", refused
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["connection"] == "close"
    assert ready.status == 503 and ready.json()["failing"] == ["worker"], ready.json()
    clients.join()
    assert _one_terminal(clients.results["long"]).event in ("done", "error")


def _a_worker_and_its_connections(server: Any, opened: list[Any]) -> tuple[int, list[Any]]:
    """A worker holding two or more of the `opened` keep-alive connections, and those."""
    by_worker: dict[int, list[Any]] = {}
    for number, sock in enumerate(opened):
        marker = f"conn-{number}-{uuid.uuid4().hex[:8]}"
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: %s\r\n\r\n" % marker.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while length:
            length -= len(sock.recv(length))
        pid = next(r["pid"] for r in server.log_records() if r.get("correlation_id") == marker)
        by_worker.setdefault(pid, []).append(sock)
    pid, mine = max(by_worker.items(), key=lambda item: len(item[1]))
    assert len(mine) >= 2, by_worker
    return pid, mine


def test_sighup_with_a_bad_upstreams_file_keeps_the_running_pool(start_server, fake, tmp_path) -> None:
    """A pool file broken on disk is refused at the reload (the log names UPSTREAMS_FILE, never a
    key); the workers keep the running pool; once it is fixed, the next SIGHUP applies it."""
    listing = tmp_path / "upstreams.toml"
    listing.write_text(f'[[upstream]]\nname = "first"\nurl = "{fake.base_url}"\n')
    running = start_server(UPSTREAMS_FILE=str(listing), OPENAI_BASE_URL="")
    leaky = f'api_key = "sk-leak-{"x" * 20}"\nweight = 0\n'
    listing.write_text(f'[[upstream]]\nname = "first"\nurl = "{fake.base_url}"\n{leaky}')
    running.proc.send_signal(signal.SIGHUP)
    with httpx.Client(base_url=running.url, timeout=30) as client:
        deadline = time.monotonic() + 30
        while not (refused := _logged(running, "config_reload_refused")):
            assert time.monotonic() < deadline, running.log_text()[-3000:]
            time.sleep(0.2)
        assert "UPSTREAMS_FILE" in refused[0]["detail"] and "weight" in refused[0]["detail"]
        assert "sk-leak" not in running.log_text() and running.proc.poll() is None
        _until_answered(client, {})
        assert [s["name"] for s in client.get("/ready").json()["servers"]] == ["first"]
        listing.write_text(f'[[upstream]]\nname = "second"\nurl = "{fake.base_url}"\n')
        running.proc.send_signal(signal.SIGHUP)
        while [s["name"] for s in client.get("/ready").json()["servers"]] != ["second"]:
            assert time.monotonic() < deadline + 30
            time.sleep(0.2)


def test_a_reload_on_the_memory_store_keeps_every_keys_spend_and_windows(start_server, fake, tmp_path) -> None:
    """The red team's finding: `kill -HUP` (how the key file is reloaded) reset every key's spend
    to 0 on the memory store. The draining worker hands its counters to the new one: the spend,
    what a generation running through the drain settles, and the minute's requests survive."""
    key = "reload-spend-key-0123456789abcdef"
    (tmp_path / "keys").write_text(f"{key} name=reloaded budget_day=50 rpm=1000\n")
    (tmp_path / "upstreams.toml").write_text(
        f'[[upstream]]\nurl = "{fake.base_url}"\n[prices."fake-model"]\ninput = 100\noutput = 1000\n'
    )
    files = {"CHATWAIT_API_KEYS_FILE": str(tmp_path / "keys"), "UPSTREAMS_FILE": str(tmp_path / "upstreams.toml")}
    report = {"ADMIN_API_KEY": "admin-reload-0123456789abcdef", "DATA_DIR": str(tmp_path / "data")}  # not counted twice
    running = start_server(**files, **report, OPENAI_BASE_URL="", GUNICORN_GRACEFUL_TIMEOUT="5")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi @tokens=5"}]}
    with httpx.Client(base_url=running.url, timeout=30, headers=auth) as client:
        costs = [float(client.post("/v1/chat/completions", json=body).headers["x-chatwait-cost-usd"]) for _ in range(4)]
        spent = client.get("/v1/spend").json()["budgets"]["budget_day"]["spent_usd"]
        assert spent == pytest.approx(sum(costs), abs=1e-9)
        slow = {**body, "messages": [{"role": "user", "content": "slow @tokens=60 @delay_ms=20"}]}
        during: list[httpx.Response] = []
        runner = threading.Thread(target=lambda: during.append(client.post("/v1/chat/completions", json=slow)))
        runner.start()
        time.sleep(0.3)
        running.proc.send_signal(signal.SIGHUP)
        runner.join()
        assert during[0].status_code == 200, during[0].text
        total = sum(costs) + float(during[0].headers["x-chatwait-cost-usd"])
        after = None
        for _ in range(100):
            time.sleep(0.2)
            answer = client.get("/v1/spend")
            if answer.status_code == 200:
                after = answer.json()["budgets"]["budget_day"]["spent_usd"]
                if abs(after - total) < 1e-9 and _logged(running, "counters_taken"):
                    break
        assert after == pytest.approx(total, abs=1e-9), "what was spent before and through the reload"
        answer = client.post("/v1/chat/completions", json=body)
        assert int(answer.headers["x-ratelimit-remaining-requests"]) <= 1000 - 6, "the minute's requests too"


@pytest.mark.parametrize("ending", ["stopped", "killed"])
def test_a_restart_on_the_memory_store_keeps_every_budgets_spend(start_server, fake, tmp_path, ending) -> None:
    """The red team's finding: a restart (a deploy, a crash) refilled every budget on the memory
    store. With the spend report in DATA_DIR, the new workers' counters start from this month's
    spend: /v1/spend says the same after, and an exhausted key stays refused."""
    key, small = "restart-spend-key-0123456789abcdef", "restart-small-key-0123456789abcdef"
    names = uuid.uuid4().hex[:8]  # a Redis's counters outlive one test
    (tmp_path / "keys").write_text(
        f"{key} name=restarted-{names} budget_day=50 budget_month=60\n{small} name=small-{names} budget_day=0.02\n"
    )
    (tmp_path / "upstreams.toml").write_text(
        f'[[upstream]]\nurl = "{fake.base_url}"\n[prices."fake-model"]\ninput = 100\noutput = 1000\n'
    )
    env = {
        "CHATWAIT_API_KEYS_FILE": str(tmp_path / "keys"), "UPSTREAMS_FILE": str(tmp_path / "upstreams.toml"),
        "ADMIN_API_KEY": "admin-restart-0123456789abcdef", "DATA_DIR": str(tmp_path / "data"), "OPENAI_BASE_URL": "",
    }  # fmt: skip
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi @tokens=5"}], "max_tokens": 5}
    first = start_server(**env)
    with httpx.Client(base_url=first.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        costs = [float(client.post("/v1/chat/completions", json=body).headers["x-chatwait-cost-usd"]) for _ in range(3)]
        before = client.get("/v1/spend").json()["budgets"]
    with httpx.Client(base_url=first.url, timeout=30, headers={"Authorization": f"Bearer {small}"}) as client:
        while (answer := client.post("/v1/chat/completions", json=body)).status_code == 200:
            pass
        assert answer.json()["error"]["code"] == "budget_exhausted", answer.text
    assert before["budget_day"]["spent_usd"] == pytest.approx(sum(costs), abs=1e-9)
    time.sleep(1.5)  # the spend report is written once a second
    if ending == "killed":
        first.proc.kill()
        first.proc.wait(10)
    first.stop()
    second = start_server(**env)
    with httpx.Client(base_url=second.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        after = client.get("/v1/spend").json()["budgets"]
    for name in ("budget_day", "budget_month"):
        assert after[name]["spent_usd"] == pytest.approx(before[name]["spent_usd"], abs=1e-9), name
    refused = httpx.post(f"{second.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {small}"})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exhausted", refused.text
    if second.env.get("STREAM_STORE") != "redis":
        assert _logged(second, "spend_resumed"), "the start says where its counters come from"
