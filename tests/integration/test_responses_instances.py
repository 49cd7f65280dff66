"""A Responses API stream with reasoning and function calls, written by one instance and read
on another that shares its Redis: the reader lays the events out from what Redis holds, so a
resume after any sequence number lands exactly, live or ended (over SSE, or over a new WebSocket
with `chatwait:response.resume`), and when the writer's worker is killed mid-arguments the
reader's ending (generation_lost) closes every item the stream opened."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from websockets.exceptions import ConnectionClosed

from harness.processes import ChatWaitServer
from harness.proxy import CuttingProxy

from ..conftest import FAKE_MODEL, server_env
from ..sse import iter_events, parse, responses_events
from .test_node_clients import run
from .test_responses_socket import ENDINGS, RESUME, sse_messages
from .test_responses_tools import WEATHER

pytestmark = pytest.mark.integration


@pytest.fixture
def two(fake, redis_server):
    """Two instances of one worker each on the tests' Redis."""
    env = server_env(fake.base_url, STREAM_STORE="redis", REDIS_URL=redis_server.url, WEB_CONCURRENCY="1")
    started = [ChatWaitServer(env), ChatWaitServer(env)]
    yield started
    for running in started:
        running.stop()


def accumulated(events) -> list:
    """The output the `openai` SDK's stream accumulator builds from these events."""
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    snapshot = None
    for event in events:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=event.data))
        snapshot = state._ResponseStreamState__current_snapshot  # what a client sees as it goes
    return snapshot.output


def test_a_resume_on_another_instance_lands_exactly_live_or_ended(two) -> None:
    writer, reader = two
    body = {"model": FAKE_MODEL, "input": "@tool_calls=2 @reasoning=3 @argpieces=6 @delay_ms=40", "tools": [WEATHER],
            "stream": True}  # fmt: skip
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{writer.url}/v1/responses", json=body) as response:
            stream_id = response.headers["x-stream-id"]
            live = iter_events(response)
            head = [next(live) for _ in range(8)]  # inside the reasoning, or the first call
            elsewhere = client.get(f"{reader.url}/v1/responses/resp_{stream_id}", params={"stream": "true",
                                   "starting_after": head[-1].id})  # fmt: skip
            rest = list(live)
        assert parse(elsewhere.content)[0] == rest, "the other instance followed it live, event for event"
        whole = client.get(f"{writer.url}/v1/responses/resp_{stream_id}", params={"stream": "true"}).content
        events = responses_events(whole)
        assert [int(e.id) for e in events] == list(range(len(events)))
        for cut in range(len(events) - 1):
            again = client.get(f"{reader.url}/v1/responses/resp_{stream_id}",
                               params={"stream": "true", "starting_after": cut}).content  # fmt: skip
            assert whole.endswith(again.removeprefix(b"retry: 2000\n")), f"after {cut}: byte for byte the rest"
    with openai.OpenAI(base_url=f"{writer.url}/v1", api_key="unused") as sdk:
        on_writer = sdk.responses.retrieve(f"resp_{stream_id}")
    with openai.OpenAI(base_url=f"{reader.url}/v1", api_key="unused") as sdk:
        on_reader = sdk.responses.retrieve(f"resp_{stream_id}")
    assert on_reader.model_dump() == on_writer.model_dump()
    assert [item.type for item in on_reader.output] == ["reasoning", "function_call", "function_call"]


def test_a_killed_writer_mid_arguments_ends_with_every_item_closed(two) -> None:
    writer, reader = two
    body = {"model": FAKE_MODEL, "input": "@tool_calls=1 @argpieces=4000 @delay_ms=10", "tools": [WEATHER],
            "stream": True}  # fmt: skip
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{writer.url}/v1/responses", json=body) as response:
            stream_id = response.headers["x-stream-id"]
            live = iter_events(response)
            [next(live) for _ in range(5)]  # a call opened, pieces of its arguments coming
        following = threading.Event()

        def follow() -> list:
            with client.stream("GET", f"{reader.url}/v1/responses/resp_{stream_id}", params={"stream": "true"}) as got:
                frames = (e for e in iter_events(got) if e.event != ":comment")
                first = next(frames)
                following.set()
                return [first, *frames]

        with ThreadPoolExecutor(max_workers=1) as pool:
            followed = pool.submit(follow)
            assert following.wait(30)
            time.sleep(0.3)
            pids = [line["pid"] for line in writer.log_records() if line.get("event") == "request_received"]
            os.kill(pids[-1], signal.SIGKILL)
            *events, done = followed.result(timeout=60)
    assert done.data == "[DONE]" and done.id is None, "the Open Responses end of stream"
    assert [int(e.id) for e in events] == list(range(len(events))), "contiguous, to the reader's ending"
    ending = events[-1].data
    assert ending["type"] == "response.failed" and ending["response"]["error"]["code"] == "generation_lost"
    (call,) = ending["response"]["output"]
    pieces = "".join(e.data["delta"] for e in events if e.event == "response.function_call_arguments.delta")
    assert call["type"] == "function_call" and call["status"] == "incomplete" and call["arguments"] == pieces != ""
    closing = ["response.function_call_arguments.done", "response.output_item.done", "response.failed"]
    assert [e.event for e in events[-3:]] == closing
    (snapshot,) = accumulated(events)
    assert snapshot.arguments == pieces and snapshot.call_id == call["call_id"]


def _messages(conn, first: dict | None = None) -> list[bytes]:
    """Send `first` (if given) on an openai-python socket; every message, as sent, to a turn's ending."""
    if first is not None:
        conn.send(first)
    received: list[bytes] = []
    while not received or json.loads(received[-1])["type"] not in ENDINGS:
        received.append(conn.recv_bytes())
    return received


def _cut_turn(writer, ask: dict) -> tuple[list[bytes], int]:
    """A turn over openai-python's socket, the network cut at a random byte after its first
    message and before its last one's end: the messages the client had, and the seed."""
    alike = httpx.post(f"{writer.url}/v1/responses", json={**ask, "stream": True}, timeout=30).content
    framed = [len(message) + (2 if len(message) < 126 else 4) for message in sse_messages(alike)]
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")  # shown if the test fails
    proxy = CuttingProxy(writer.port)
    before: list[bytes] = []
    try:
        cut_at = random.Random(seed).randrange(framed[0] + 64, sum(framed) - 64)  # margins: lengths may differ a little
        proxy.cut_next_stream(after_bytes=cut_at, after_head=True, marker=b"Switching Protocols")
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
        with client, pytest.raises((ConnectionClosed, OSError)), client.responses.connect() as conn:
            conn.send({"type": "response.create", **ask})
            while True:
                before.append(conn.recv_bytes())
    finally:
        proxy.close()
    assert proxy.cuts == 1 and before, f"seed {seed}"
    return before, seed


@pytest.mark.parametrize("store", [True, False])
def test_a_socket_cut_mid_tool_call_is_reattached_on_another_instance_byte_for_byte(two, store: bool) -> None:
    """openai-python's WebSocket client: a tool loop's turn cut by the network at a random byte
    (its seed named on failure), reattached on the other instance; what the client had and what
    the new socket sent are the turn's whole stream as an uncut reader gets it, byte for byte, and
    the loop goes on from the new socket."""
    writer, reader = two
    ask = {"model": FAKE_MODEL, "input": "Weather? @tool_calls=2 @argpieces=12 @delay_ms=10", "tools": [WEATHER]}
    before, seed = _cut_turn(writer, {**ask, "store": store})
    response_id = json.loads(before[0])["response"]["id"]
    resume = {"type": RESUME, "response_id": response_id, "starting_after": json.loads(before[-1])["sequence_number"]}
    client = openai.OpenAI(base_url=f"{reader.url}/v1", api_key="unused", max_retries=0)
    with client, client.responses.connect() as conn:
        after = _messages(conn, resume)
        whole = httpx.get(f"{writer.url}/v1/responses/{response_id}", params={"stream": "true"}, timeout=30)
        assert [m.decode() for m in before + after] == sse_messages(whole.content), f"seed {seed}"
        final = json.loads(after[-1])["response"]
        assert final["status"] == "completed" and [i["type"] for i in final["output"]] == ["function_call"] * 2
        calls = [call["call_id"] for call in final["output"]]
        outputs = [{"type": "function_call_output", "call_id": call, "output": "sunny"} for call in calls]
        if store:
            goes_on = {"previous_response_id": response_id, "input": outputs}
        else:  # its chain was the old socket's: the new one does not know it
            again = {"type": "response.create", **ask, "previous_response_id": response_id, "input": outputs}
            lost = json.loads(_messages(conn, {**again, "store": False})[-1])
            assert lost["type"] == "error" and lost["error"]["code"] == "previous_response_not_found"
            goes_on = {"input": [{"role": "user", "content": ask["input"]}, *final["output"], *outputs]}
        answer = json.loads(_messages(conn, {"type": "response.create", **ask, "store": store, **goes_on})[-1])
    assert answer["type"] == "response.completed"
    assert answer["response"]["output"][0]["content"][0]["text"].startswith("The tool said"), answer


@pytest.mark.parametrize("store", [True, False])
def test_openai_node_reattaches_a_turn_cut_mid_tool_call_on_another_instance(two, store: bool) -> None:
    """openai-node's `ResponsesWS`: the socket terminated after a random number of events (its seed
    named on failure), the turn reattached on the other instance; the messages of the two sockets
    are the turn's whole stream, byte for byte, and the tool loop goes on from the new socket."""
    writer, reader = two
    seed = random.randrange(1 << 30)
    cut_after = random.Random(seed).randrange(1, 29)  # created, in progress, 2 calls' 13 events: mid-arguments
    print(f"seed {seed}: the socket terminated after {cut_after} events")  # shown if the test fails
    settings = {"CHATWAIT_OTHER_URL": reader.url, "CHATWAIT_CUT_AFTER": str(cut_after)}
    reported = run(writer, "openai-responses-websocket-reattach", CHATWAIT_STORE=str(store).lower(), **settings)
    assert len(reported["before"]) >= cut_after, f"seed {seed}"
    response_id = json.loads(reported["before"][0])["response"]["id"]
    whole = httpx.get(f"{writer.url}/v1/responses/{response_id}", params={"stream": "true"}, timeout=30)
    assert reported["before"] + reported["after"] == sse_messages(whole.content), f"seed {seed}"
    assert reported["answer"][0] == "response.completed" and reported["answer"][1].startswith("The tool said")
