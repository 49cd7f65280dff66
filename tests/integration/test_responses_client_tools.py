"""The tools a Responses client runs beyond function tools, over the fake upstream (a chat
completions server: every tool a function to it), on both stream stores: `namespace` tools (Codex
CLI sends one by default) flattened on the way in and their calls named as the client sent them,
and `custom` tools (free-form input: Codex's `apply_patch`) carried as a function of one string,
their calls streamed as `custom_tool_call` items and resumed byte for byte."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from ..conftest import FAKE_MODEL
from ..sse import responses_events

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores

LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Find a customer.",
    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    "defer_loading": True,  # a field ChatWait does not know: left out, named
}
CRM = {"type": "namespace", "name": "crm", "description": "The customer records.", "tools": [LOOKUP]}
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /(.|\\n)+/'},
}
# Quotes, backslashes, newlines and characters beyond ASCII: escapes the arguments split in pieces.
PATCH_TEXT = '*** Begin Patch\n*** Add File: a "b".txt\n+ caf\u00e9 \U0001f600 \\ end\n*** End Patch\n'


def _directive(tool: str, arguments: dict) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(arguments).encode()).decode().rstrip("=")
    return f"@tool={tool} @args={encoded}"


def test_a_namespace_reaches_the_upstream_flat_and_its_call_comes_back_named_as_sent(sdk, http) -> None:
    shown = sdk.responses.create(
        model=FAKE_MODEL,
        input="@reply=request",
        tools=[CRM, WEATHER],
        tool_choice={"type": "function", "name": "lookup"},
    )
    sent = json.loads(shown.output_text)
    assert [t["function"]["name"] for t in sent["tools"]] == ["crm__lookup", "get_weather"]
    assert sent["tools"][0]["function"]["description"] == "The customer records.\n\nFind a customer."
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "crm__lookup"}}
    assert shown.tools[0].type == "namespace" and shown.tools[0].tools[0].strict is None, "echoed whole"

    first = sdk.responses.create(model=FAKE_MODEL, input="Who is 7?", tools=[CRM, WEATHER])
    (call,) = first.output
    assert (call.type, call.name, call.namespace) == ("function_call", "lookup", "crm")
    dumped = call.model_dump(exclude_none=True)
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "Ada"}
    answer = sdk.responses.create(
        model=FAKE_MODEL, input=[{"role": "user", "content": "Who is 7?"}, dumped, output], tools=[CRM]
    )
    assert answer.output_text == "The tool said: Ada"
    echo = sdk.responses.create(
        model=FAKE_MODEL, input=[{"role": "user", "content": "@reply=request"}, dumped, output], tools=[CRM]
    )
    (assistant,) = [m for m in json.loads(echo.output_text)["messages"] if m["role"] == "assistant"]
    assert assistant["tool_calls"][0]["function"]["name"] == "crm__lookup", "sent back under the name it was called"
    chained = sdk.responses.create(model=FAKE_MODEL, previous_response_id=first.id, input=[output], tools=[CRM])
    assert chained.output_text == "The tool said: Ada"
    referenced = sdk.responses.create(
        model=FAKE_MODEL, input=[{"type": "item_reference", "id": call.id}, output], tools=[CRM]
    )
    assert referenced.output_text == "The tool said: Ada"

    body = {"model": FAKE_MODEL, "input": "Who is 7?", "tools": [CRM], "stream": True}
    streamed = http.post("/v1/responses", json=body)
    assert streamed.headers["x-chatwait-unknown-fields"] == "tools[].tools[].defer_loading"
    events = [e.data for e in responses_events(streamed.content)]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert (added["item"]["name"], added["item"]["namespace"]) == ("lookup", "crm")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["name"] == "lookup" and json.loads(done["arguments"]) == {"id": "fake"}


def test_a_custom_tool_call_streams_its_input_and_resumes_byte_for_byte(http: httpx.Client) -> None:
    asked = f"Patch it {_directive('apply_patch', {'input': PATCH_TEXT})} @delay_ms=5"
    body = {"model": FAKE_MODEL, "input": asked, "tools": [WEATHER, PATCH], "stream": True}
    streamed = http.post("/v1/responses", json=body)
    events = responses_events(streamed.content)
    data = [e.data for e in events]
    deltas = [d["delta"] for d in data if d["type"] == "response.custom_tool_call_input.delta"]
    assert len(deltas) > 10 and "".join(deltas) == PATCH_TEXT, "the input, decoded piece by piece"
    assert not [d for d in data if d["type"].startswith("response.function_call_arguments")]
    (done,) = [d for d in data if d["type"] == "response.custom_tool_call_input.done"]
    assert done["input"] == PATCH_TEXT
    final = data[-1]["response"]
    (item,) = final["output"]
    assert {k: item[k] for k in ("type", "name", "input", "status")} == {
        "type": "custom_tool_call", "name": "apply_patch", "input": PATCH_TEXT, "status": "completed"}  # fmt: skip
    assert "namespace" not in item and "arguments" not in item
    assert final["tools"][1] == PATCH
    assert http.get(f"/v1/responses/{final['id']}").json() == final, (
        "the stored object is the one the stream ended with"
    )
    for cut in range(len(events) - 1):
        rest = http.get(f"/v1/responses/{final['id']}", params={"stream": "true", "starting_after": cut}).content
        assert streamed.content.endswith(rest.removeprefix(b"retry: 2000\n")), f"byte for byte the rest after {cut}"


def test_a_custom_tool_reaches_the_upstream_as_a_function_of_one_string_and_its_call_goes_back(sdk) -> None:
    with sdk.responses.stream(
        model=FAKE_MODEL, input=f"Patch {_directive('apply_patch', {'input': PATCH_TEXT})}", tools=[PATCH]
    ) as stream:
        final = stream.get_final_response()
    (call,) = final.output
    assert (call.type, call.name, call.input) == ("custom_tool_call", "apply_patch", PATCH_TEXT), "the SDK's own view"
    output = {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}
    given = [{"role": "user", "content": "Patch"}, call.model_dump(exclude_none=True), output]
    assert sdk.responses.create(model=FAKE_MODEL, input=given, tools=[PATCH]).output_text == "The tool said: Done!"
    given[0]["content"] = "@reply=request"
    sent = json.loads(sdk.responses.create(model=FAKE_MODEL, input=given, tools=[PATCH]).output_text)
    (function,) = [t["function"] for t in sent["tools"]]
    assert function["parameters"]["required"] == ["input"] and PATCH["format"]["definition"] in function["description"]
    (assistant,) = [m for m in sent["messages"] if m["role"] == "assistant"]
    (upstream_call,) = assistant["tool_calls"]
    assert upstream_call["function"]["name"] == "apply_patch"
    assert json.loads(upstream_call["function"]["arguments"]) == {"input": PATCH_TEXT}
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "Done!"}
    forced = sdk.responses.create(
        model=FAKE_MODEL,
        input="@reply=request",
        tools=[WEATHER, PATCH],
        tool_choice={"type": "custom", "name": "apply_patch"},
    )
    assert json.loads(forced.output_text)["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}


def test_a_model_that_writes_no_json_for_a_custom_tool_gives_its_text_as_the_input(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "input": "@tool=apply_patch @argpieces=5", "tools": [PATCH]}
    (item,) = http.post("/v1/responses", json=body).json()["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == '{"text": "xxxxxxxx"}', "the arguments as written"


def test_a_hosted_tool_choice_is_left_out_with_its_tool_and_a_bad_tool_refused(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "input": "hi", "tools": [WEATHER, {"type": "web_search"}]}
    chose = http.post("/v1/responses", json={**body, "tool_choice": {"type": "web_search"}})
    assert chose.status_code == 200 and chose.json()["tool_choice"] == "auto"
    assert chose.headers["x-chatwait-unknown-fields"] == "tools[].web_search, tool_choice.web_search"
    nested = {"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}
    refused = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": "hi", "tools": [nested]})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tools[0].tools[0]"
    grammar = {**PATCH, "format": {"type": "grammar", "syntax": "ebnf", "definition": "x"}}
    bad = http.post("/v1/responses", json={"model": FAKE_MODEL, "input": "hi", "tools": [grammar]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tools[0].format"


ADDED = {"type": "additional_tools", "role": "developer", "tools": [CRM, PATCH, {"type": "web_search"}]}


def test_tools_an_additional_tools_item_adds_are_offered_and_named_back_stored_and_resumed(sdk, http) -> None:
    """Codex's way for the models it knows: no top-level `tools`, an `additional_tools` input item.
    Its tools reach the model flat (a hosted one left out and named), their calls come back as the
    client sent the tools, a resume writes the same bytes, a stored chain offers them again, and a
    background response does the same."""
    shown = sdk.responses.create(model=FAKE_MODEL, input=[ADDED, {"role": "user", "content": "@reply=request"}])
    sent = json.loads(shown.output_text)
    assert [t["function"]["name"] for t in sent["tools"]] == ["crm__lookup", "apply_patch"]
    assert shown.tools == [], "the response echoes the request's own tools"
    body = {"model": FAKE_MODEL, "input": [ADDED, {"role": "user", "content": "Who is 7? @tool=crm__lookup"}]}
    streamed = http.post("/v1/responses", json={**body, "stream": True})
    named = streamed.headers["x-chatwait-unknown-fields"]
    assert named == "input[].tools[].tools[].defer_loading, input[].tools[].web_search"
    final = responses_events(streamed.content)[-1].data["response"]
    (call,) = final["output"]
    assert (call["type"], call["name"], call["namespace"]) == ("function_call", "lookup", "crm")
    again = http.get(f"/v1/responses/{final['id']}", params={"stream": "true"}).content
    assert again.removeprefix(b"retry: 2000\n") == streamed.content.removeprefix(b"retry: 2000\n"), "byte for byte"

    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "Ada"}
    chained = sdk.responses.create(model=FAKE_MODEL, previous_response_id=final["id"], input=[output])
    assert chained.output_text == "The tool said: Ada"
    later = sdk.responses.create(model=FAKE_MODEL, previous_response_id=chained.id, input="@reply=request")
    assert [t["function"]["name"] for t in json.loads(later.output_text)["tools"]] == ["crm__lookup", "apply_patch"]

    background = sdk.responses.create(**body, background=True)
    for _ in range(100):
        fetched = sdk.responses.retrieve(background.id)
        if fetched.status not in ("queued", "in_progress"):
            break
        time.sleep(0.05)
    (called,) = fetched.output
    assert (fetched.status, called.name, called.namespace) == ("completed", "lookup", "crm")
