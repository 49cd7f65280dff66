"""The embedded model's tool plan, its grammar's integer ranges, and the conversation as its chat
template takes it (no model needed)."""

from __future__ import annotations

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.providers.local.grammar import CALL, CHOOSE, MAX_ENUMERATED_INTEGERS, TEXT, _enumerated, tool_plan
from app.providers.local.prompt import template_messages

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time.", "parameters": {}}}
ASKED = [{"role": "user", "content": "Weather in Paris?"}]
ANSWERED = [*ASKED, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c1",
            "content": "Sunny"}]  # fmt: skip


NAMED = {"type": "function", "function": {"name": "get_time"}}


@pytest.mark.parametrize(
    "options,messages,plan",
    [
        ({}, ASKED, (TEXT, [])),
        ({"tools": [WEATHER], "tool_choice": "none"}, ASKED, (TEXT, [])),
        ({"tools": [WEATHER]}, ASKED, (CALL, [WEATHER])),  # auto: a question calls the tool
        ({"tools": [WEATHER], "tool_choice": "auto"}, ANSWERED, (TEXT, [])),  # auto after a result: the answer
        ({"tools": [WEATHER], "tool_choice": "required"}, ANSWERED, (CALL, [WEATHER])),
        ({"tools": [WEATHER, TIME]}, ASKED, (CHOOSE, [WEATHER, TIME])),
        ({"tools": [WEATHER, TIME], "tool_choice": NAMED}, ASKED, (CALL, [TIME])),
    ],
)
def test_the_tool_plan(options, messages, plan) -> None:
    assert tool_plan(options, messages) == plan


@pytest.mark.parametrize(
    "bounds,values",
    [
        ({"minimum": 1, "maximum": 7}, list(range(1, 8))),
        ({"exclusiveMinimum": 0, "exclusiveMaximum": 3}, [1, 2]),
        ({"minimum": 0.5, "maximum": 3.5}, [1, 2, 3]),
        ({"minimum": -2, "maximum": 2, "exclusiveMaximum": True}, [-2, -1, 0, 1]),  # JSON Schema draft 4
        ({"minimum": 3, "maximum": 1}, None),  # nothing fits: left to the schema's other rules
        ({"minimum": 0}, None),  # unbounded: not enumerated
        ({"minimum": 0, "maximum": MAX_ENUMERATED_INTEGERS}, None),  # one too many values
    ],
)
def test_a_small_integer_range_is_given_as_its_values(bounds, values) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", **bounds}, "tags": {"type": "array",
              "items": {"type": "integer", **bounds}}}}  # fmt: skip
    made = _enumerated(schema)
    assert made["properties"]["n"].get("enum") == values and made["properties"]["tags"]["items"].get("enum") == values


@given(st.integers(-50, 50), st.integers(0, 40), st.booleans(), st.booleans())
def test_every_enumerated_value_validates_and_every_valid_integer_is_enumerated(low, span, lo_x, hi_x) -> None:
    bounds = {"exclusiveMinimum" if lo_x else "minimum": low, "exclusiveMaximum" if hi_x else "maximum": low + span}
    schema = {"type": "integer", **bounds}
    made = _enumerated(schema).get("enum", [])
    valid = [n for n in range(low - 2, low + span + 3) if jsonschema.Draft202012Validator(schema).is_valid(n)]
    assert made == valid


def test_the_template_gets_text_only_with_calls_written_out_and_results_named() -> None:
    parts = [{"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]}]
    plain = template_messages([*parts, *ANSWERED])
    assert plain == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Called get_weather with {}"},
        {"role": "user", "content": "The result of get_weather: Sunny"},
    ]
    assert all(type(message["content"]) is str for message in plain)
