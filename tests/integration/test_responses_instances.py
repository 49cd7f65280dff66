"""A Responses API stream with reasoning and function calls, written by one instance and read
on another that shares its Redis: the reader lays the events out from what Redis holds, so a
resume after any sequence number lands exactly, live or ended, and when the writer's worker is
killed mid-arguments the reader's ending (generation_lost) closes every item the stream opened."""

from __future__ import annotations

import os
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

from harness.processes import ChatWaitServer

from ..conftest import FAKE_MODEL, server_env
from ..sse import iter_events, parse, responses_events
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
