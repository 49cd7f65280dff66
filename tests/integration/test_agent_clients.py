"""Agent frameworks through chat completions, with the fake upstream scripted to call tools
(harness/fake_replies.py): LangChain's `bind_tools` and `with_structured_output`, and the OpenAI
Agents SDK on its chat-completions model (an agent with one function tool, `Runner.run` and
`run_streamed`, a structured `output_type`)."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import pydantic
import pytest

from ..conftest import FAKE_MODEL

pytestmark = pytest.mark.integration


class Forecast(pydantic.BaseModel):
    city: str
    days: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"clear in {city}"


@pytest.fixture
def chat(server, request):
    from langchain_openai import ChatOpenAI

    http = httpx.Client(timeout=30)
    request.addfinalizer(http.close)
    return ChatOpenAI(model=FAKE_MODEL, base_url=f"{server.url}/v1", api_key="unused", max_retries=0, http_client=http)


def test_langchain_binds_tools_and_gets_whole_calls_streamed_or_not(chat) -> None:
    tooled = chat.bind_tools([get_weather])
    called = tooled.invoke("Weather in Oslo?")
    assert [(c["name"], c["args"]) for c in called.tool_calls] == [("get_weather", {"city": "fake"})]
    chunks = list(tooled.stream("Weather in Oslo? @tool_calls=2 @delay_ms=5"))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [("get_weather", {"city": "fake"})] * 2
    assert len({c["id"] for c in whole.tool_calls}) == 2


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_structured_output_by_schema_and_by_tool(chat, method: str) -> None:
    structured = chat.with_structured_output(Forecast, method=method)
    assert structured.invoke("Forecast for Oslo") == Forecast(city="fake", days=1)


def _run(server, play, output_type=None):
    """`play(agent)` with an agent on ChatWait's chat completions, its client closed after."""
    from agents import Agent, OpenAIChatCompletionsModel, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)

    async def run():
        async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30) as client:
            model = OpenAIChatCompletionsModel(model=FAKE_MODEL, openai_client=client)
            tools = [] if output_type else [function_tool(get_weather)]
            agent = Agent(name="weather", instructions="Be brief.", model=model, tools=tools, output_type=output_type)
            return await play(agent)

    # In a thread of its own: an earlier test's client (Playwright's) may hold this thread's loop.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result(timeout=120)


def test_the_agents_sdk_runs_a_function_tool_and_answers(server) -> None:
    from agents import Runner

    result = _run(server, lambda agent: Runner.run(agent, "Weather in Oslo?"))
    assert result.final_output == "The tool said: clear in fake"
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]


def test_the_agents_sdk_streams_a_run_with_a_tool(server) -> None:
    from agents import Runner

    async def play(agent) -> tuple[list[str], str]:
        streamed = Runner.run_streamed(agent, "Weather in Oslo? @delay_ms=5 @reasoning=2")
        names = [event.name async for event in streamed.stream_events() if event.type == "run_item_stream_event"]
        return names, streamed.final_output

    names, final = _run(server, play)
    assert "tool_called" in names and "tool_output" in names and final == "The tool said: clear in fake"


def test_the_agents_sdk_gets_a_structured_output_type(server) -> None:
    from agents import Runner

    result = _run(server, lambda agent: Runner.run(agent, "Forecast for Oslo"), output_type=Forecast)
    assert result.final_output == Forecast(city="fake", days=1)
