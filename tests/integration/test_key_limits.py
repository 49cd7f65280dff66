"""Per-key limits (max_streams, rpm, tpm) from CHATWAIT_API_KEYS_FILE: on Redis, two gateways
(2 + 1 workers) enforce one limit between them; on the memory store, one process does. Refusals
are 429 rate_limited (rate_limit_exceeded in OpenAI's shape) with Retry-After; every answer to a
key with limits carries OpenAI's x-ratelimit-* headers."""

from __future__ import annotations

import itertools
import secrets
import threading

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer

from ..conformance import conform
from ..conftest import FAKE_MODEL, server_env
from ..sse import iter_events, parse

pytestmark = pytest.mark.integration

STREAMER = "limits-streamer-0123456789abcdef"
COUNTER = "limits-counter-0123456789abcdef"
SPENDER = "limits-spender-0123456789abcdef"
FREE = "limits-free-key-0123456789abcdef"
SLOW = "@tokens=40 @delay_ms=100"  # four seconds: held open while the test looks


class Gateways:
    """The instances a test talks to: two on one Redis, or one process on the memory store."""

    def __init__(self, servers: list[ChatWaitServer], names: dict[str, str]) -> None:
        self.servers = servers
        self.names = names

    def client(self, key: str, at: int = 0) -> httpx.Client:
        server = self.servers[at % len(self.servers)]
        return httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateways(request, fake, tmp_path_factory):
    run = secrets.token_hex(3)  # names of this run only: the session's Redis outlives the module
    labels = ((STREAMER, "streamer"), (COUNTER, "counter"), (SPENDER, "spender"))
    names = {key: f"{label}-{run}" for key, label in labels}
    key_file = tmp_path_factory.mktemp("limits") / "keys.txt"
    key_file.write_text(
        "# key, name and limits\n"
        f"{STREAMER} name={names[STREAMER]} max_streams=2\n"
        f"{COUNTER} name={names[COUNTER]} rpm=5\n"
        f"{SPENDER}   name={names[SPENDER]}  tpm=50\n"
        f"{FREE}\n",
        encoding="utf-8",
    )
    env = server_env(fake.base_url, CHATWAIT_API_KEYS_FILE=str(key_file), STREAM_STORE=request.param)
    servers = []
    if request.param == "memory":
        servers.append(ChatWaitServer(env))
    else:
        shared = {**env, "REDIS_URL": request.getfixturevalue("redis_server").url}
        servers.append(ChatWaitServer({**shared, "WEB_CONCURRENCY": "2"}))
        servers.append(ChatWaitServer({**shared, "WEB_CONCURRENCY": "1"}))
    yield Gateways(servers, names)
    for server in servers:
        server.stop()


def _refused(answer: httpx.Response, limit: str) -> None:
    assert answer.status_code == 429, answer.text
    body = answer.json()
    conform("Error", body)
    assert body["error_code"] == "rate_limited" and f"({limit})" in body["detail"]
    assert 1 <= int(answer.headers["retry-after"]) <= 60


def _hold_stream(client: httpx.Client, opened: threading.Event, release: threading.Event) -> None:
    with client.stream("POST", "/v1/chat/streaming", json={"message": SLOW}) as answer:
        assert answer.status_code == 200
        opened.set()
        release.wait(10)


def test_max_streams_holds_across_instances_and_frees_when_a_stream_ends(gateways) -> None:
    opened, release = threading.Event(), threading.Event()
    holder_client = gateways.client(STREAMER, 0)
    holder = threading.Thread(target=_hold_stream, args=(holder_client, opened, release), daemon=True)
    holder.start()
    try:
        assert opened.wait(10)
        with gateways.client(STREAMER, 1) as second, gateways.client(STREAMER, 2) as third:
            with second.stream("POST", "/v1/chat/streaming", json={"message": "@tokens=10 @delay_ms=100"}) as short:
                assert short.status_code == 200
                assert short.headers["x-ratelimit-remaining-streams"] == "0"
                refused = third.post("/v1/chat/streaming", json={"message": "@tokens=2"})
                _refused(refused, "max_streams")
                assert refused.headers["x-ratelimit-limit-streams"] == "2"
                assert refused.headers["x-ratelimit-remaining-streams"] == "0"
                with gateways.client(FREE, 1) as free:
                    assert free.post("/v1/chat/streaming", json={"message": "@tokens=2"}).status_code == 200
                assert parse(short.read())[0][-1].event == "done"
            again = _until_admitted(third)
            assert again.status_code == 200 and parse(again.content)[0][-1].event == "done"
    finally:
        release.set()
        holder.join(10)
        holder_client.close()


def _until_admitted(client: httpx.Client) -> httpx.Response:
    """The next stream of a key at max_streams once one of its streams has ended (the slot frees
    as the generation ends: within a few seconds of the client leaving)."""
    for _ in range(50):
        answer = client.post("/v1/chat/streaming", json={"message": "@tokens=2"})
        if answer.status_code != 429:
            return answer
        threading.Event().wait(0.2)
    return answer


def test_rpm_counts_five_across_instances_then_refuses(gateways, request) -> None:
    remaining = []
    for at in range(5):
        with gateways.client(COUNTER, at) as client:
            answer = client.post("/v1/chat/wait", json={"message": "@tokens=1"})
            assert answer.status_code == 200
            assert answer.headers["x-ratelimit-limit-requests"] == "5"
            assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
            remaining.append(int(answer.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [4, 3, 2, 1, 0]
    for at in range(2):
        with gateways.client(COUNTER, at) as client:
            refused = client.post("/v1/chat/wait", json={"message": "@tokens=1"})
            _refused(refused, "rpm")
            assert refused.headers["x-ratelimit-remaining-requests"] == "0"
            assert client.get("/v1/models").headers["x-ratelimit-remaining-requests"] == "0", "a look counts nothing"
    sdk = openai.OpenAI(base_url=f"{gateways.servers[-1].url}/v1", api_key=COUNTER, max_retries=0)
    request.addfinalizer(sdk.close)
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "@tokens=1"}])
    assert raised.value.code == "rate_limit_exceeded"
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60


def test_tpm_refuses_once_spent(gateways) -> None:
    with gateways.client(SPENDER, 0) as first:
        answer = first.post("/v1/chat/wait", json={"message": "@tokens=60"})  # alone past 50: admitted
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit-tokens"] == "50"
    with gateways.client(SPENDER, 1) as second:
        refused = second.post(
            "/v1/chat/completions", json={"model": FAKE_MODEL, "messages": [{"role": "user", "content": "@tokens=1"}]}
        )
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        conform("OpenAIError", refused.json())
        assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
        assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_names_reach_the_logs_and_metrics_keys_never(gateways) -> None:
    with gateways.client(FREE, 0) as client:
        assert client.post("/v1/chat/wait", json={"message": "@tokens=1"}).status_code == 200
    text = "".join(server.log_text() for server in gateways.servers)
    metrics = "".join(httpx.get(f"{server.url}/metrics").text for server in gateways.servers)
    for key in (*gateways.names, FREE):
        assert key not in text and key not in metrics
    named = {record["client_name"] for server in gateways.servers for record in server.log_records()
             if record.get("event") == "request_completed" and "client_name" in record}  # fmt: skip
    assert named and not named & {*gateways.names, FREE}, "the lines name the key, never by its secret"
    assert f'chatwait_key_refusals_total{{key="{gateways.names[COUNTER]}",limit="rpm"}}' in metrics


def test_ready_says_where_limits_are_counted(gateways) -> None:
    ready = httpx.get(f"{gateways.servers[0].url}/ready").json()
    conform("Ready", ready)
    check = ready["checks"]["key_limits"]
    assert check["ok"] is True
    assert ("Redis" if ready["store"] == "redis" else "memory") in check["detail"]


def _until_no_stream_runs(gateways: Gateways, key: str) -> None:
    """Wait for a key's earlier streams to end (a stream whose client left runs on to its end)."""
    with gateways.client(key) as client:
        for _ in range(100):
            if client.get("/v1/models").headers["x-ratelimit-remaining-streams"] == "2":
                return
            threading.Event().wait(0.1)
    raise AssertionError("the key's earlier streams did not end")


def test_many_at_once_never_pass_the_shared_limit(gateways) -> None:
    """Concurrent admissions: a max_streams=2 key opened from many threads at once gets two."""
    _until_no_stream_runs(gateways, STREAMER)
    results: list[int] = []
    lock = threading.Lock()
    releases = [threading.Event() for _ in range(6)]

    def try_one(at: int) -> None:
        client = gateways.client(STREAMER, at)
        with client, client.stream("POST", "/v1/chat/streaming", json={"message": SLOW}) as answer:
            with lock:
                results.append(answer.status_code)
            releases[at].wait(10)

    threads = [threading.Thread(target=try_one, args=(at,), daemon=True) for at in range(6)]
    for thread in threads:
        thread.start()
    for _ in itertools.repeat(None, 200):
        with lock:
            if len(results) == 6:
                break
        threading.Event().wait(0.05)
    for release in releases:
        release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [200, 200, 429, 429, 429, 429]


BUSY = "admission-busy-0123456789abcdef"
OTHER = "admission-other-0123456789abcdef"


def _follow(server: ChatWaitServer, key: str, message: str, events: list, timeline: list, who: str) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with (
        httpx.Client(base_url=server.url, timeout=30, headers=headers) as client,
        client.stream("POST", "/v1/chat/streaming", json={"message": message}) as answer,
    ):
        assert answer.status_code == 200
        for event in iter_events(answer):
            events.append(event)
            timeline.append((who, event.event))


def test_a_waiting_key_gets_the_next_free_slot_ahead_of_the_busy_one(start_server) -> None:
    server = start_server(
        STREAM_STORE="memory", MAX_STREAMS="4", ADMISSION_WAIT_SECONDS="20", CHATWAIT_API_KEYS=f"{BUSY},{OTHER}"
    )
    timeline: list = []
    streams = {who: [] for who in ("short", "long1", "long2", "long3", "busy5", "other")}
    threads = {}

    def begin(who: str, key: str, message: str) -> None:
        threads[who] = threading.Thread(
            target=_follow, args=(server, key, message, streams[who], timeline, who), daemon=True
        )
        threads[who].start()
        for _ in range(100):
            if streams[who]:
                return
            threading.Event().wait(0.05)
        raise AssertionError(f"{who} got nothing")

    # "short" frees the first slot when the test stops it, once both waiters are in line (a
    # loaded machine may take seconds to get there: a reply that ended by itself could free the
    # slot for busy5 before "other" arrives).
    begin("short", BUSY, "@tokens=400 @delay_ms=100")
    for who in ("long1", "long2", "long3"):
        begin(who, BUSY, "@tokens=40 @delay_ms=100")
    begin("busy5", BUSY, "@tokens=2")
    assert streams["busy5"][0].event == "queued" and streams["busy5"][0].data == {"ahead": 0}
    begin("other", OTHER, "@tokens=3 @delay_ms=300")  # holds the slot a while: busy5 opens after it, not 1 ms after
    assert streams["other"][0].event == "queued" and streams["other"][0].data == {"ahead": 0}, "it goes first"
    short = streams["short"][0].data["stream_id"]
    stopped = httpx.delete(f"{server.url}/v1/chat/streaming/{short}", headers={"Authorization": f"Bearer {BUSY}"})
    assert stopped.status_code == 200, stopped.text
    for thread in threads.values():
        thread.join(30)
    assert streams["busy5"][-1].event == "done" and streams["other"][-1].event == "done"
    assert {"ahead": 1} in [e.data for e in streams["busy5"] if e.event == "queued"], "told it fell behind"
    opened = [who for who, event in timeline if event == "stream"]
    assert opened.index("other") < opened.index("busy5"), opened
    done = [who for who, event in timeline if event == "done"]
    assert done.index("short") < opened.index("other") and "long1" not in done[: done.index("other")]


def test_past_the_wait_a_queued_stream_ends_with_server_busy(start_server) -> None:
    server = start_server(STREAM_STORE="memory", MAX_STREAMS="1", ADMISSION_WAIT_SECONDS="0.5")
    holder: list = []
    thread = threading.Thread(
        target=_follow, args=(server, "", "@tokens=30 @delay_ms=100", holder, [], "holder"), daemon=True
    )
    thread.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(100):
            if holder:
                break
            threading.Event().wait(0.05)
        assert holder, "the holder's stream began"
        answer = client.post("/v1/chat/streaming", json={"message": "@tokens=2"})
        events = [event for event in parse(answer.content)[0] if event.event != ":comment"]  # keepalives
        assert answer.status_code == 200 and answer.headers["x-stream-id"]
        assert [e.event for e in events] == ["queued", "stream", "error"]
        ending = events[-1].data
        assert ending["error_code"] == "server_busy" and "ADMISSION_WAIT_SECONDS" in ending["detail"]
        assert client.get(f"/v1/chat/streaming/{answer.headers['x-stream-id']}").status_code == 404, "nothing kept"
        completion = client.post(
            "/v1/chat/completions",
            json={"model": FAKE_MODEL, "messages": [{"role": "user", "content": "@tokens=1"}], "stream": True},
        )
        assert completion.status_code == 200 and b'"server_busy"' in completion.content
    thread.join(10)
