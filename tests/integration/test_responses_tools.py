"""Tools, structured output, images and reasoning through the Responses API, with the `openai`
SDK, the OpenAI Agents SDK (its default, Responses model) and LangChain against the fake
upstream scripted to call tools (harness/fake_replies.py), on both stream stores (Redis: two
workers, so a resume may land on a worker that did not write the stream)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re

import httpx
import openai
import pydantic
import pytest

from harness.proxy import CuttingProxy

from ..conftest import FAKE_MODEL
from ..sse import iter_events, responses_events
from .test_tools import QUIRKS

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}


class Answer(pydantic.BaseModel):
    city: str
    days: int
    sunny: bool


def test_a_function_call_and_its_output_make_a_conversation(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(model=FAKE_MODEL, input="Weather?", tools=[WEATHER, TIME])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "fake", "days": 1} and call.call_id == "call_fake0"
    assert first.output_text == "" and first.status == "completed" and first.tools[0].name == "get_weather"
    given = [{"role": "user", "content": "Weather?"}, call.model_dump(exclude_none=True)]
    answer = sdk.responses.create(
        model=FAKE_MODEL,
        input=[*given, {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[WEATHER],
    )
    assert answer.output_text == "The tool said: sunny, 21 C"
    chained = sdk.responses.create(
        model=FAKE_MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain"}],
        tools=[WEATHER],
    )
    assert chained.output_text == "The tool said: rain", "the stored turn kept the call its output answers"
    referenced = [given[0], {"type": "item_reference", "id": call.id}]  # as the Vercel AI SDK sends it
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "fog"}
    by_reference = sdk.responses.create(model=FAKE_MODEL, input=[*referenced, output], tools=[WEATHER])
    assert by_reference.output_text == "The tool said: fog"
    forced = sdk.responses.create(
        model=FAKE_MODEL,
        input="@tool_calls=2",
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert [item.name for item in forced.output] == ["get_time", "get_time"]
    assert forced.tool_choice.name == "get_time" and len({item.call_id for item in forced.output}) == 2


def test_the_stream_helper_gets_reasoning_and_whole_calls(sdk: openai.OpenAI) -> None:
    asked = "Weather? @tool_calls=2 @reasoning=3 @delay_ms=5"
    with sdk.responses.stream(model=FAKE_MODEL, input=asked, tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds.count("response.function_call_arguments.delta") > 4, "the arguments came in pieces"
    assert kinds.count("response.reasoning_text.delta") == 3 and kinds[-1] == "response.completed"
    reasoning, *calls = final.output
    assert reasoning.type == "reasoning" and reasoning.content[0].text == "think0 think1 think2 "
    assert [(c.type, c.name, json.loads(c.arguments)) for c in calls] == [
        ("function_call", "get_weather", {"city": "fake", "days": 1})
    ] * 2
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(numbers)))
    fetched = sdk.responses.retrieve(final.id)
    streamed = final.model_dump(exclude={"output": {"__all__": {"parsed_arguments"}}})  # the helper's own field
    assert fetched.model_dump() == streamed, "the stored object is the one the stream ended with"


def test_parse_with_a_pydantic_model_gets_a_valid_object(sdk: openai.OpenAI) -> None:
    parsed = sdk.responses.parse(model=FAKE_MODEL, input="Forecast", text_format=Answer)
    assert parsed.output_parsed == Answer(city="fake", days=1, sunny=True)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "Answer"
    with sdk.responses.stream(model=FAKE_MODEL, input="Forecast", text_format=Answer) as stream:
        assert stream.get_final_response().output_parsed == Answer(city="fake", days=1, sunny=True)


def test_an_image_part_reaches_the_upstream_as_an_image_url(sdk: openai.OpenAI) -> None:
    url = "data:image/png;base64,iVBORw0KGgo="
    content = [
        {"type": "input_text", "text": "What is it? @reply=request"},
        {"type": "input_image", "image_url": url, "detail": "low"},
    ]
    reply = sdk.responses.create(model=FAKE_MODEL, input=[{"role": "user", "content": content}])
    sent = json.loads(reply.output_text)
    image = {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is it? @reply=request"}, image]}
    ]


def test_the_response_object_holds_each_function_tool_whole_strict_included(sdk: openai.OpenAI) -> None:
    bare = {"type": "function", "name": "get_weather", "parameters": WEATHER["parameters"]}
    with sdk.responses.stream(model=FAKE_MODEL, input="Two calls @tool_calls=1", tools=[bare]) as stream:
        events = list(stream)
    for response in [events[0].response, events[-1].response]:
        (tool,) = [t.model_dump(exclude_unset=True) for t in response.tools]
        assert tool == {**bare, "description": None, "strict": None}, "strict is there, null: not asked for"


def test_tools_and_format_reach_the_upstream_in_chat_completions_terms(sdk: openai.OpenAI) -> None:
    reply = sdk.responses.create(
        model=FAKE_MODEL, input="@reply=request", tools=[WEATHER], tool_choice="none", parallel_tool_calls=False
    )
    sent = json.loads(reply.output_text)
    function = {key: WEATHER[key] for key in ("name", "description", "parameters", "strict")}
    assert sent["tools"] == [{"type": "function", "function": function}]
    assert sent["tool_choice"] == "none" and sent["parallel_tool_calls"] is False
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    text = {"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}}
    formatted = sdk.responses.create(model=FAKE_MODEL, input="go", text=text)
    assert json.loads(formatted.output_text) == {"a": 1} and formatted.text.format.name == "A"


def test_a_function_call_cut_mid_arguments_resumes_exactly(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "input": "@tool_calls=2 @reasoning=2 @delay_ms=10", "tools": [WEATHER], "stream": True}
    with http.stream("POST", "/v1/responses", json=body) as response:
        stream_id = response.headers["x-stream-id"]
        live = iter_events(response)
        head = [next(live) for _ in range(9)]  # created, in progress, reasoning, a call's start and pieces
    whole = http.get(f"/v1/responses/resp_{stream_id}", params={"stream": "true"})
    events = responses_events(whole.content)
    assert [(e.id, e.data) for e in head] == [(e.id, e.data) for e in events[:9]], "what the client saw is the replay"
    assert [int(e.id) for e in events] == list(range(len(events)))
    for cut in range(len(events) - 1):
        rest = http.get(f"/v1/responses/resp_{stream_id}", params={"stream": "true", "starting_after": cut}).content
        assert [e.id for e in responses_events(rest)] == [e.id for e in events[cut + 1 :]], f"after {cut}"
        assert whole.content.endswith(rest.removeprefix(b"retry: 2000\n")), "byte for byte the rest of the replay"
    last = http.get(f"/v1/responses/resp_{stream_id}", params={"stream": "true", "starting_after": len(events) - 1})
    assert last.status_code == 204


@pytest.mark.parametrize("after_bytes", [2500, 3500, 5000])
def test_the_resuming_helper_of_docs_clients_md_carries_calls_cut_mid_arguments(server, request, after_bytes) -> None:
    """Cut through a proxy at several points inside the calls' arguments, resumed (on any worker):
    the events the helper yields are those of the uncut stream, in order, each once."""
    from .test_openai_resume import CLIENTS

    blocks = re.findall(r"```python\n(.*?)```", CLIENTS.read_text(encoding="utf-8"), re.DOTALL)
    source = next(block for block in blocks if "def resumable_response" in block)
    namespace: dict = {}
    exec(compile(source.split("\nclient = ")[0], "docs/clients.md", "exec"), namespace)  # the helper, not its usage
    proxy = CuttingProxy(server.port)
    request.addfinalizer(proxy.close)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    request.addfinalizer(client.close)
    proxy.cut_next_stream(after_bytes=after_bytes)
    asked = {"model": FAKE_MODEL, "input": "@tool_calls=2 @argpieces=20 @reasoning=2 @delay_ms=5", "tools": [WEATHER]}
    events = list(namespace["resumable_response"](client, **asked))
    assert proxy.cuts == 1
    uncut = client.responses.retrieve(events[0].response.id, stream=True)
    assert [e.model_dump() for e in events] == [e.model_dump() for e in uncut], "event for event the uncut stream"
    assert events[-1].type == "response.completed" and [o.type for o in events[-1].response.output] == [
        "reasoning", "function_call", "function_call"]  # fmt: skip


@pytest.mark.parametrize("quirk", QUIRKS)
def test_each_upstream_quirk_still_gives_one_well_formed_function_call_item_per_call(sdk, quirk: str) -> None:
    with sdk.responses.stream(
        model=FAKE_MODEL, input=f"Two calls @tool_calls=2 @quirk={quirk}", tools=[WEATHER]
    ) as stream:
        final = stream.get_final_response()
    calls = [(item.name, json.loads(item.arguments)) for item in final.output]
    assert calls == [("get_weather", {"city": "fake", "days": 1})] * 2
    assert len({item.call_id for item in final.output}) == 2 and all(item.call_id for item in final.output)


def test_hosted_tools_are_left_out_and_named_and_file_inputs_refused_by_name(http: httpx.Client) -> None:
    tools = [WEATHER, {"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    hosted = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": "hi", "tools": tools})
    assert hosted.status_code == 200, "Codex CLI's defaults hold web_search: the function tools still work"
    assert hosted.headers["x-chatwait-unknown-fields"] == "tools[].web_search, tools[].file_search"
    assert [tool["name"] for tool in hosted.json()["tools"]] == ["get_weather"]
    refuse = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": "hi", "tools": [{"name": "x"}]})
    assert refuse.status_code == 400 and refuse.json()["error"]["param"] == "tools[0]", "a tool with no type"
    image = {"type": "input_image", "file_id": "file-1"}
    files = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": [{"role": "user", "content": [image]}]})
    assert files.status_code == 400 and files.json()["error"]["param"] == "input[0].content"
    reference = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": [{"type": "item_reference", "id": "x"}]})
    assert reference.status_code == 404 and reference.json()["error"]["code"] == "response_not_found"
    only_reasoning = {"model": FAKE_MODEL, "input": [{"type": "reasoning", "summary": []}]}
    assert http.post("/v1/responses", json=only_reasoning).json()["error"]["param"] == "input"


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"clear in {city}"


def _agent_run(server, play):
    """`play(agent)` with an agent on the Agents SDK's default model (the Responses API)."""
    from agents import Agent, OpenAIResponsesModel, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)

    async def run():
        async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
            model = OpenAIResponsesModel(model=FAKE_MODEL, openai_client=client)
            agent = Agent(name="weather", instructions="Be brief.", model=model, tools=[function_tool(get_weather)])
            return await play(agent)

    with concurrent.futures.ThreadPoolExecutor(1) as thread:  # its own loop, as in test_agent_clients
        return thread.submit(asyncio.run, run()).result(timeout=120)


def test_the_agents_sdk_runs_a_function_tool_over_the_responses_api(server) -> None:
    from agents import Runner

    result = _agent_run(server, lambda agent: Runner.run(agent, "Weather in Oslo? @reasoning=2"))
    assert result.final_output == "The tool said: clear in fake"
    kinds = [item.type for item in result.new_items]
    # Each turn reasons first; the second turn's input carries the first's reasoning back (taken, not sent on).
    assert kinds == [
        "reasoning_item",
        "tool_call_item",
        "tool_call_output_item",
        "reasoning_item",
        "message_output_item",
    ]

    async def streamed(agent) -> tuple[list[str], str]:
        run = Runner.run_streamed(agent, "Weather in Oslo? @delay_ms=5")
        names = [event.name async for event in run.stream_events() if event.type == "run_item_stream_event"]
        return names, run.final_output

    names, final = _agent_run(server, streamed)
    assert "tool_called" in names and "tool_output" in names and final == "The tool said: clear in fake"


def test_langchain_binds_tools_over_the_responses_api(server, request) -> None:
    from langchain_openai import ChatOpenAI

    http = httpx.Client(timeout=30)
    request.addfinalizer(http.close)
    chat = ChatOpenAI(
        model=FAKE_MODEL,
        base_url=f"{server.url}/v1",
        api_key="unused",
        max_retries=0,
        http_client=http,
        use_responses_api=True,
    )
    tooled = chat.bind_tools([get_weather])
    called = tooled.invoke("Weather in Oslo?")
    assert [(c["name"], c["args"]) for c in called.tool_calls] == [("get_weather", {"city": "fake"})]
    chunks = list(tooled.stream("Weather in Oslo? @tool_calls=2 @delay_ms=5"))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [("get_weather", {"city": "fake"})] * 2

    class Forecast(pydantic.BaseModel):
        city: str
        days: int

    assert chat.with_structured_output(Forecast, method="json_schema").invoke("Forecast") == Forecast(
        city="fake", days=1
    )
