"""The Responses API's WebSocket mode, with openai-python's own client (`responses.connect`) and
raw sockets: tool loops over one socket (stored and `store: false`), the same events as HTTP
streaming, a socket cut mid-turn whose turn resumes over SSE without a lost or repeated event,
errors as events, and hostile clients closed with the protocol's codes."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import socket
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.uri import parse_uri

from harness.proxy import CuttingProxy

from ..conftest import FAKE_MODEL, readme_block
from .test_responses_tools import WEATHER

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores
ENDINGS = ("response.completed", "response.incomplete", "response.failed", "error")
RESUME = "chatwait:response.resume"


def _turn(conn: Any, **body: Any) -> list[Any]:
    """Send one response.create; its events, up to and including its last."""
    conn.send({"type": "response.create", "model": FAKE_MODEL, **body})
    events = []
    for event in conn:
        events.append(event)
        if event.type in ENDINGS:
            return events
    raise AssertionError("the socket closed mid-turn")


def _ws_url(server: Any) -> str:
    return server.url.replace("http://", "ws://") + "/v1/responses"


@pytest.mark.parametrize("store", [True, False])
def test_a_tool_loop_of_three_turns_runs_over_one_socket(sdk: openai.OpenAI, store: bool) -> None:
    with sdk.responses.connect() as conn:
        first = _turn(conn, input="Weather?", tools=[WEATHER], store=store)[-1].response
        (call,) = first.output
        assert call.type == "function_call" and call.name == "get_weather"
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        second = _turn(conn, previous_response_id=first.id, input=[output], tools=[WEATHER], store=store)[-1].response
        assert second.output_text == "The tool said: sunny", "the turn saw the call its output answers"
        assert second.previous_response_id == first.id, "echoed, the socket's chain or the store's"
        again = {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}
        third = _turn(conn, previous_response_id=second.id, input=[again], tools=[WEATHER], store=store)[-1].response
        assert third.output_text == "The tool said: rain" and third.status == "completed"
    if store:
        assert sdk.responses.retrieve(third.id).output_text == "The tool said: rain"
    else:  # a store=false chain lives in its socket only
        with pytest.raises(openai.NotFoundError):
            sdk.responses.create(model=FAKE_MODEL, previous_response_id=first.id, input="and?")


@pytest.mark.parametrize("store", [True, False])
def test_a_warmup_generates_nothing_and_the_next_turn_chains_from_it(sdk: openai.OpenAI, fake, store: bool) -> None:
    """`generate: false` (Codex sends one first): the turn's state is prepared, the model is not
    asked; a turn that chains from it is sent its input and no reply it never had."""
    marker = uuid.uuid4().hex
    before = fake.stats()["requests"]
    with sdk.responses.connect() as conn:
        warm = _turn(conn, input=f"{marker} the context", generate=False, store=store)
        assert [e.type for e in warm] == ["response.created", "response.in_progress", "response.completed"]
        prepared = warm[-1].response
        assert prepared.status == "completed" and prepared.output == [] and prepared.usage.output_tokens == 0
        assert fake.stats()["requests"] == before, "nothing generated"
        turn = _turn(conn, previous_response_id=prepared.id, input="@reply=request", store=store)[-1].response
    sent = json.loads(turn.output_text)["messages"]
    assert [m["role"] for m in sent] == ["user", "user"] and marker in sent[0]["content"], sent


def test_a_turn_sends_the_events_that_http_streaming_sends(sdk: openai.OpenAI) -> None:
    asked = {"input": "Weather? @tool_calls=1 @reasoning=2 @tokens=3", "tools": [WEATHER]}
    with sdk.responses.connect() as conn:
        over_socket = _turn(conn, **asked)
    over_http = list(sdk.responses.create(model=FAKE_MODEL, stream=True, **asked))

    def shape(events: list[Any]) -> list[tuple[str, int, str]]:
        return [(e.type, e.sequence_number, getattr(e, "delta", "") or "") for e in events]

    assert shape(over_socket) == shape(over_http)
    assert over_socket[-1].type == "response.completed"


def test_a_socket_cut_mid_turn_leaves_its_turn_running_and_resumable_over_sse(server: Any) -> None:
    """What the socket delivered before the cut, then what a resume over SSE gives after its last
    sequence number, is byte for byte the response's whole event stream: nothing lost or twice."""
    body = {"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=60 @delay_ms=15", "store": False}
    ws = ws_connect(_ws_url(server))
    ws.send(json.dumps(body))
    received = [ws.recv(timeout=10) for _ in range(12)]
    ws.socket.shutdown(socket.SHUT_RDWR)  # the network drops: no closing handshake
    ws.socket.close()
    response_id = json.loads(received[0])["response"]["id"]
    last = json.loads(received[-1])["sequence_number"]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        rest = http.get(f"/v1/responses/{response_id}", params={"stream": "true", "starting_after": str(last)})
        whole = http.get(f"/v1/responses/{response_id}", params={"stream": "true"})
    events = sse_messages(whole.content)
    assert received + sse_messages(rest.content) == events
    assert json.loads(events[-1])["type"] == "response.completed"


def _until_ending(ws: Any) -> list[str]:
    """A raw socket's messages up to and including a turn's last."""
    messages = [ws.recv(timeout=30)]
    while json.loads(messages[-1])["type"] not in ENDINGS:
        messages.append(ws.recv(timeout=30))
    return messages


def test_a_turn_is_reattached_on_a_new_socket_in_its_lane_and_bad_reattachments_are_error_events(server) -> None:
    """`chatwait:response.resume` on a new socket: a running turn's events after the number given,
    live to its end, each in the lane the message names; without a number, all of them; after its
    last, a `nothing_to_resume` error event (a client waiting for an ending gets one; the socket
    goes on); an unknown response or bad fields, error events."""
    body = {"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=40 @delay_ms=15"}
    ws = ws_connect(_ws_url(server))
    ws.send(json.dumps(body))
    received = [ws.recv(timeout=10) for _ in range(6)]
    ws.socket.shutdown(socket.SHUT_RDWR)  # the network drops mid-turn
    ws.socket.close()
    response_id, last = json.loads(received[0])["response"]["id"], json.loads(received[-1])["sequence_number"]
    with ws_connect(_ws_url(server)) as again:
        again.send(json.dumps({"type": RESUME, "response_id": response_id, "starting_after": last, "stream_id": "x"}))
        rest = _until_ending(again)
        assert all(message.startswith('{"stream_id":"x","type":') for message in rest)
        whole = sse_messages(httpx.get(f"{server.url}/v1/responses/{response_id}?stream=true", timeout=30).content)
        assert received + [message.replace('"stream_id":"x",', "", 1) for message in rest] == whole
        again.send(json.dumps({"type": RESUME, "response_id": response_id}))
        assert _until_ending(again) == whole, "without starting_after: every event"
        for fields, code, param in (
            ({"response_id": response_id, "starting_after": len(whole) - 1}, "nothing_to_resume", None),
            ({"response_id": "resp_nowhere"}, "response_not_found", None),
            ({}, "validation_error", "response_id"),
            ({"response_id": "x" * 201}, "validation_error", "response_id"),
            ({"response_id": response_id, "starting_after": -1}, "validation_error", "starting_after"),
            ({"response_id": response_id, "starting_after": "3"}, "validation_error", "starting_after"),
        ):
            again.send(json.dumps({"type": RESUME, **fields}))
            event = json.loads(again.recv(timeout=10))
            assert event["type"] == "error" and event["code"] == code and event["param"] == param, event


def sse_messages(body: bytes) -> list[str]:
    """The `data` of each event of an SSE body, as sent."""
    found = []
    for frame in body.split(b"\n\n"):
        data = [line[6:] for line in frame.split(b"\n") if line.startswith(b"data: ")]
        if data and data != [b"[DONE]"]:
            found.append(b"\n".join(data).decode())
    return found


def test_errors_are_events_and_the_socket_stays_open(server: Any) -> None:
    with ws_connect(_ws_url(server)) as ws:
        for message, code in (
            ("{not json", "invalid_json"),
            ('{"type": "response.interrupt"}', "unknown_client_event"),
            (json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "x", "background": True}), None),
            (json.dumps({"type": "response.create", "model": FAKE_MODEL, "previous_response_id": "resp_gone"}), None),
            (json.dumps({"type": "response.create", "model": "no-such-model", "input": "x"}), "model_not_found"),
            (json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": 5}), "validation_error"),
            (json.dumps({"type": "response.create", "model": FAKE_MODEL, "previous_response_id": [1]}), None),
            ("[1, 2]", "unknown_client_event"),
        ):
            ws.send(message)
            event = json.loads(ws.recv(timeout=10))
            assert event["type"] == "error" and event["error"]["code"] == event["code"], event
            assert code is None or event["code"] == code
            assert event["message"] and isinstance(event["status"], int)
        ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=2"}))
        kinds = [json.loads(ws.recv(timeout=10))["type"]]
        while kinds[-1] not in ENDINGS:
            kinds.append(json.loads(ws.recv(timeout=10))["type"])
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_steering_is_answered_as_openai_answers_for_a_model_that_cannot_be_steered(server: Any) -> None:
    """`response.steer` (OpenAI's beta): `response.steer.failed`, `steering_not_supported`, the
    input given back for the next turn; `invalid_input` for a malformed one; the socket goes on."""
    with ws_connect(_ws_url(server)) as ws:
        ws.send(json.dumps({"type": "response.steer", "previous_response_id": "resp_x", "input": "Shorter, please."}))
        failed = json.loads(ws.recv(timeout=10))
        assert failed["type"] == "response.steer.failed" and failed["error"]["code"] == "steering_not_supported"
        assert failed["steer"] == {"input": "Shorter, please.", "previous_response_id": "resp_x"}
        assert failed["error"]["type"] == "invalid_request_error" and failed["error"]["message"]
        ws.send(json.dumps({"type": "response.steer", "input": []}))
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == "invalid_input"
        ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=1"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "response.created"


def test_an_unknown_previous_response_is_previous_response_not_found(sdk: openai.OpenAI) -> None:
    with sdk.responses.connect() as conn:
        (event,) = _turn(conn, previous_response_id="resp_nowhere", input="hi")
    assert event.type == "error" and event.code == "previous_response_not_found"
    assert event.param == "previous_response_id"


def test_lanes_run_side_by_side_and_their_events_say_which(server: Any) -> None:
    """`stream_id` lanes (the newest SDKs' multiplexing): a slow turn on one lane does not hold up
    a quick one on another; each lane runs its own turns in order; every event of a lane's turn
    names it; a turn without one runs on the default lane, its events as they were."""
    slow = {"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=20 @delay_ms=50", "stream_id": "a"}
    quick = {**slow, "input": "@tokens=2", "stream_id": "b"}
    plain = {key: value for key, value in quick.items() if key != "stream_id"}
    with ws_connect(_ws_url(server)) as ws:
        for turn in (slow, {**slow, "input": "@tokens=3"}, quick, plain):
            ws.send(json.dumps(turn))
        events = []
        while sum(1 for e in events if e["type"] in ENDINGS) < 4:
            events.append(json.loads(ws.recv(timeout=30)))
    ended = [(e.get("stream_id"), e["response"]["usage"]["output_tokens"]) for e in events if e["type"] in ENDINGS]
    assert ended.index(("b", 2)) < ended.index(("a", 20)), "the quick lane is not held up by the slow one"
    assert ended.index(("a", 20)) < ended.index(("a", 3)), "a lane's turns in their order"
    assert (None, 2) in ended, "no stream_id: the default lane"
    by_response: dict[str, set] = {}
    for event in events:
        found = event.get("response", {}).get("id") or event.get("item_id") or event.get("item", {}).get("id")
        if found:
            by_response.setdefault(found.rsplit("_", 1)[-1], set()).add(event.get("stream_id"))
    assert all(len(lanes) == 1 for lanes in by_response.values()), "each turn's events in one lane only"


def test_lanes_are_bounded(server: Any) -> None:
    with ws_connect(_ws_url(server)) as ws:
        for lane in range(9):
            turn = {"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=1", "stream_id": f"l{lane}"}
            ws.send(json.dumps(turn))
        events = []
        while sum(1 for e in events if e["type"] in ENDINGS) < 9:
            events.append(json.loads(ws.recv(timeout=30)))
        ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "x", "stream_id": 7}))
        invalid = json.loads(ws.recv(timeout=30))
    refused = [e for e in events if e["type"] == "error"]
    assert len(refused) == 1 and refused[0]["stream_id"] == "l8" and refused[0]["code"] == "too_many_pending_turns"
    assert invalid["type"] == "error" and invalid["param"] == "stream_id"


def test_a_flood_of_turns_is_bounded_and_health_stays_fast(server: Any) -> None:
    body = json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=3 @delay_ms=20"})
    with ws_connect(_ws_url(server)) as ws:
        for _ in range(30):
            ws.send(body)
        started = time.monotonic()
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 5
        events = []
        while sum(1 for e in events if e["type"] in ENDINGS) < 30:
            events.append(json.loads(ws.recv(timeout=20)))
    refused = [e for e in events if e["type"] == "error"]
    completed = [e for e in events if e["type"] == "response.completed"]
    assert refused and all(e["code"] == "too_many_pending_turns" for e in refused)
    assert len(refused) + len(completed) == 30 and len(completed) >= 1


def test_a_message_over_the_bound_closes_the_socket_with_1009(server: Any) -> None:
    with ws_connect(_ws_url(server), max_size=None) as ws:
        ws.send("x" * (1_048_576 + 10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_an_unmasked_frame_closes_the_socket_with_1002(server: Any) -> None:
    client = ClientProtocol(parse_uri(_ws_url(server)))
    client.send_request(client.connect())
    with socket.create_connection((server.url.split("//")[1].split(":")[0], int(server.url.rsplit(":", 1)[1]))) as raw:
        raw.settimeout(10)
        raw.sendall(b"".join(client.data_to_send()))
        client.receive_data(raw.recv(65536))
        assert client.events_received()[0].status_code == 101
        raw.sendall(b"\x81\x05hello")  # a text frame without the client's mask
        client.receive_data(raw.recv(65536))
    assert client.close_rcvd is not None and client.close_rcvd.code == 1002


def _raw_socket(server: Any, receive_buffer: int = 0) -> tuple[socket.socket, ClientProtocol]:
    """A socket past its upgrade, driven by hand (`receive_buffer`: its SO_RCVBUF, before connecting)."""
    client = ClientProtocol(parse_uri(_ws_url(server)))
    client.send_request(client.connect())
    raw = socket.socket()
    if receive_buffer:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", server.port))
    raw.sendall(b"".join(client.data_to_send()))
    client.receive_data(raw.recv(4096))
    assert client.events_received()[0].status_code == 101
    return raw, client


_UPGRADE = (
    b"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _upgraded(port: int) -> tuple[socket.socket, bytes]:
    """A raw socket that asked for the upgrade, and the head of the answer."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    raw.sendall(_UPGRADE)
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(4096) or b"\r\n\r\n"
    return raw, head


def test_sockets_take_half_of_a_workers_connections_at_most_and_http_still_answers(start_server) -> None:
    """GUNICORN_WORKER_CONNECTIONS=2000: 1,000 sockets open, the next upgrade is a 503 (not a
    connection the worker can no longer serve HTTP with); one closed, one opens again."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= 2600, f"1,001 sockets each side need more descriptors than {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # the server inherits it
    server = start_server(WEB_CONCURRENCY="1", GUNICORN_WORKER_CONNECTIONS="2000")
    opened = []
    try:
        for _ in range(1000):
            opened.append(_upgraded(server.port)[0])
        refused, head = _upgraded(server.port)
        refused.close()
        assert head.startswith(b"HTTP/1.1 503") and b"retry-after" in head.lower(), head[:200]
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        assert "chatwait_websockets_open 1000.0" in httpx.get(f"{server.url}/metrics", timeout=10).text
        opened.pop().close()
        for _ in range(50):  # the worker notices the close as its session's read ends
            again, head = _upgraded(server.port)
            again.close()
            if head.startswith(b"HTTP/1.1 101"):
                break
            time.sleep(0.1)
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
    finally:
        for raw in opened:
            raw.close()


def test_a_client_that_stops_reading_loses_its_socket_not_its_turn(start_server) -> None:
    """A slow reader: once a send waits CLIENT_WRITE_TIMEOUT_SECONDS the connection is dropped (no
    close frame can reach a client that reads nothing), the worker stays free, and the turn runs
    on, resumable over SSE."""
    server = start_server(CLIENT_WRITE_TIMEOUT_SECONDS="1", MAX_TOKENS="100000")
    raw, client = _raw_socket(server, receive_buffer=4096)
    with raw:
        turn = {"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=60000 @delay_ms=0"}
        client.send_text(json.dumps(turn).encode())
        raw.sendall(b"".join(client.data_to_send()))
        deadline = time.monotonic() + 30
        while not [r for r in server.log_records() if r.get("event") == "request_completed" and r["status"] == 101]:
            assert time.monotonic() < deadline, "the socket of a client that reads nothing is dropped"
            assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
            time.sleep(0.2)
    (created,) = [r for r in server.log_records() if r.get("event") == "stream_started" or r.get("stream_id")][:1]
    response_id = "resp_" + created["stream_id"]
    with httpx.stream("GET", f"{server.url}/v1/responses/{response_id}?stream=true", timeout=60) as resumed:
        events = [line for line in resumed.iter_lines() if line.startswith("event: ")]
    warned = [(r.get("event"), r.get("error_code")) for r in server.log_records() if r.get("level") != "INFO"]
    assert events[-1] == "event: response.completed", ("the turn ran on without its socket", warned)


def test_fragments_that_never_end_are_bounded_like_a_message(server: Any) -> None:
    """A message sent as fragments without a last one: past MAX_BODY_BYTES in all, 1009."""
    raw, client = _raw_socket(server)
    with raw:
        chunk = b"x" * 65536
        client.send_text(chunk, fin=False)
        for _ in range(20):
            client.send_continuation(chunk, fin=False)
        with contextlib.suppress(OSError):  # the server may close before it has read everything
            raw.sendall(b"".join(client.data_to_send()))
        while client.close_rcvd is None:
            data = raw.recv(65536)
            if not data:
                break
            client.receive_data(data)
    assert client.close_rcvd is not None and client.close_rcvd.code == 1009


def test_an_upgrade_where_there_is_no_websocket_mode_is_426(http: httpx.Client) -> None:
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    upgrade["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    refused = http.get("/v1/models", headers=upgrade)
    assert refused.status_code == 426 and refused.json()["error"]["code"] == "upgrade_required"
    assert http.get("/v1/responses").status_code == 405, "a plain GET is no upgrade"


def test_a_worker_that_stops_closes_its_sockets_with_1012_so_that_clients_reconnect(start_server) -> None:
    """SIGHUP: the old worker's socket, idle between turns, is told `service restart` (which the
    SDKs reconnect on) as soon as it stops, not cut when the graceful timeout ends; a new socket
    is served by the new worker."""
    server = start_server(GUNICORN_GRACEFUL_TIMEOUT="60")
    with ws_connect(_ws_url(server)) as ws:
        ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=2"}))
        while json.loads(ws.recv(timeout=10))["type"] != "response.completed":
            pass
        booted = server.log_text().count('"service_started"')
        server.proc.send_signal(signal.SIGHUP)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    deadline = time.monotonic() + 30
    while server.log_text().count('"service_started"') == booted:
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.1)
    with ws_connect(_ws_url(server)) as again:
        again.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=2"}))
        assert json.loads(again.recv(timeout=10))["type"] == "response.created"


def test_the_helper_of_docs_clients_md_resumes_a_turn_whose_socket_dropped(server: Any) -> None:
    """The socket cut after the turn's first 3,000 bytes: the helper's events are the whole
    turn's, each sequence number once, in order, and its text the whole reply."""
    namespace: dict[str, Any] = {}
    exec(readme_block("python", "def turn_over_socket(", "docs/clients.md"), namespace)
    proxy = CuttingProxy(server.port)
    try:
        proxy.cut_next_stream(after_bytes=3000, after_head=True, marker=b"Switching Protocols")
        with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
            request = {"model": FAKE_MODEL, "input": "@tokens=80 @delay_ms=10", "store": False}
            events = namespace["turn_over_socket"](client, **request)
            whole = namespace["turn_over_socket"](client, **request)  # not cut: the reference
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events] == [e.type for e in whole] and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text and len(text) > 80


def test_a_keys_store_false_chains_are_bounded_over_all_its_sockets(start_server) -> None:
    """The red team's finding: chains were bounded per socket only, so a key's many sockets held
    any amount. With SOCKET_CHAINS_KEY_BYTES at 64 KiB, a third chain of 30 KB drops the key's
    oldest, on another socket: a turn naming it gets previous_response_not_found; the newest holds."""
    key = "socket-chains-key-0123456789abcdef"
    server = start_server(CHATWAIT_API_KEYS=key, SOCKET_CHAINS_KEY_BYTES="65536", MAX_INPUT_TOKENS="20000")
    auth = {"Authorization": f"Bearer {key}"}

    def turn(ws: Any, **body: Any) -> dict[str, Any]:
        ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "store": False, **body}))
        while True:
            event = json.loads(ws.recv(timeout=30))
            if event["type"] in ("response.completed", "response.failed", "error"):
                return event

    padding = "lorem ipsum dolor " * 1_700  # about 30 KB
    with (
        ws_connect(_ws_url(server), additional_headers=auth) as one,
        ws_connect(_ws_url(server), additional_headers=auth) as two,
    ):
        first = turn(one, input=f"{padding} first @tokens=2")["response"]["id"]
        turn(two, input=f"{padding} second @tokens=2")
        third = turn(two, input=f"{padding} third @tokens=2")["response"]["id"]
        dropped = turn(one, input="and then? @tokens=2", previous_response_id=first)
        assert dropped["type"] == "error" and dropped["error"]["code"] == "previous_response_not_found", dropped
        kept = turn(two, input="and then? @tokens=2", previous_response_id=third)
        assert kept["type"] == "response.completed", kept
