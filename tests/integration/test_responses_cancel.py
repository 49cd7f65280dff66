"""A response cancelled while it streams (POST /v1/responses/{id}/cancel), as each client reports
it: never as a whole answer. It ends with `response.incomplete`, status `cancelled` and
`incomplete_details.reason` `cancelled` (the Responses API has no event of its own for it);
docs/clients.md says what each client makes of that."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import openai
import pytest

from ..conftest import FAKE_MODEL
from .test_node_clients import run

pytestmark = pytest.mark.integration

ASK = "Tell me @tokens=300 @delay_ms=20"


def test_the_openai_sdk_stream_helper_does_not_take_it_for_a_whole_answer(server, request) -> None:
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30)
    request.addfinalizer(sdk.close)
    with sdk.responses.stream(model=FAKE_MODEL, input=ASK) as stream:
        events = []
        for event in stream:
            events.append(event)
            if [e.type for e in events].count("response.output_text.delta") == 3:
                sdk.responses.cancel(events[0].response.id)
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    last = events[-1]
    assert last.type == "response.incomplete" and last.response.status == "cancelled"
    assert last.response.incomplete_details.reason == "cancelled"
    assert 0 < len(last.response.output_text) < 300 * 5, "its partial text is kept"


def test_the_agents_sdk_raises_on_a_cancelled_response(server) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
    from agents.exceptions import ModelBehaviorError

    set_tracing_disabled(True)

    async def play() -> None:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as client:
            agent = Agent(name="talker", model=OpenAIResponsesModel(model=FAKE_MODEL, openai_client=client))
            run = Runner.run_streamed(agent, ASK)
            deltas = 0
            async for event in run.stream_events():
                data = event.data if event.type == "raw_response_event" else None
                if data is not None and data.type == "response.created":
                    response_id = data.response.id
                if data is not None and data.type == "response.output_text.delta":
                    deltas += 1
                    if deltas == 3:
                        await client.responses.cancel(response_id)

    with (
        concurrent.futures.ThreadPoolExecutor(1) as thread,
        pytest.raises(ModelBehaviorError, match="status=cancelled"),
    ):
        thread.submit(asyncio.run, play()).result(timeout=120)


def test_langchain_reports_the_status_with_the_partial_text(server, request) -> None:
    from langchain_openai import ChatOpenAI

    http = httpx.Client(timeout=30)
    request.addfinalizer(http.close)
    chat = ChatOpenAI(
        model=FAKE_MODEL, base_url=f"{server.url}/v1", api_key="unused", max_retries=0, http_client=http,
        use_responses_api=True,
    )  # fmt: skip
    whole = None
    for count, chunk in enumerate(chat.stream(ASK), start=1):
        whole = chunk if whole is None else whole + chunk
        if count == 4:
            http.post(f"{server.url}/v1/responses/{whole.response_metadata['id']}/cancel")
    assert whole.response_metadata["status"] == "cancelled"
    assert whole.response_metadata["incomplete_details"] == {"reason": "cancelled"}


def test_openai_node_sees_the_cancel_and_never_a_completed_response(server) -> None:
    reported = run(server, "openai-responses-cancel")
    # openai-node 7 ends its stream helper with the object of `response.incomplete` too (6 kept its
    # own snapshot, `in_progress`): the response it reports is the cancelled one.
    assert reported == {"final": "cancelled", "last": "response.incomplete", "status": "cancelled", "partial": True}


def test_the_vercel_ai_sdk_reports_no_success(server) -> None:
    reported = run(server, "vercel-responses-cancel")
    # ai 7 maps a cancelled response's `incomplete_details.reason` to `other` (5: `unknown`).
    assert reported == {"finish": "other", "partial": True}, "not `stop`: the text is not a whole answer"
