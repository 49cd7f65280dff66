"""Structured output and tool calls on the embedded model: llama.cpp's grammar-constrained
decoding, with the grammar made from the JSON Schema the request gives.

What a reply with tools is (`tool_plan`): `none` answers in text; a function named by
tool_choice is called; `auto` answers in text once the conversation's last message is a tool's
result (the agent loop's last step), and otherwise calls a tool, as `required` does: the one
there is, or the one the model names when there are several (a first, short generation
constrained to the tools' names).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

# llama-cpp-python's JSON Schema converter lets a string hold raw control characters (a newline
# inside a string is not JSON); the rule llama.cpp itself now writes excludes them.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
ANY_OBJECT = {"type": "object"}
# The converter ignores minimum and maximum: an integer range this small is given as its values.
MAX_ENUMERATED_INTEGERS = 512
TEXT, CALL, CHOOSE = "text", "call", "choose"


def tool_plan(options: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(TEXT, []): the reply is text; (CALL, [tool]): a call to that tool; (CHOOSE, tools): a call
    to the one of them the model names."""
    tools, choice = options.get("tools") or [], options.get("tool_choice", "auto")
    if not tools or choice == "none":
        return TEXT, []
    if isinstance(choice, dict):
        named = [tool for tool in tools if tool["function"]["name"] == choice["function"]["name"]]
        return (CALL, named[:1]) if named else (TEXT, [])
    if choice == "auto" and messages and messages[-1].get("role") == "tool":
        return TEXT, []
    return (CALL, tools) if len(tools) == 1 else (CHOOSE, tools)


def reply_schema(options: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a text reply must follow (response_format), None: free text."""
    form = options.get("response_format")
    if form is not None and form["type"] == "json_schema":
        return form["json_schema"].get("schema") or ANY_OBJECT
    if form is not None and form["type"] == "json_object":
        return ANY_OBJECT
    return None


def arguments_schema(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"].get("parameters") or ANY_OBJECT


def json_grammar(schema: dict[str, Any]) -> Any:
    """A llama.cpp grammar whose every output is JSON that validates against `schema` (integer
    ranges of up to MAX_ENUMERATED_INTEGERS values included)."""
    return _grammar(json.dumps(_enumerated(schema), sort_keys=True))


def names_grammar(names: list[str]) -> Any:
    """A llama.cpp grammar whose every output is one of `names` (tool names: letters, digits, _ and -)."""
    return _from_rules("root ::= " + " | ".join(json.dumps(name) for name in names))


def _enumerated(schema: Any) -> Any:
    """`schema` with each small integer range (minimum/maximum, exclusive or not) given as its values."""
    if isinstance(schema, list):
        return [_enumerated(part) for part in schema]
    if not isinstance(schema, dict):
        return schema
    found = {key: _enumerated(value) for key, value in schema.items()}
    if found.get("type") == "integer" and "enum" not in found and "const" not in found:
        low, high = _bounds(found)
        if low is not None and high is not None and 0 < high - low + 1 <= MAX_ENUMERATED_INTEGERS:
            found["enum"] = list(range(low, high + 1))
    return found


def _bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The smallest and largest integers a schema allows (None: unbounded), JSON Schema's
    exclusive bounds of both drafts (a number, or a boolean beside minimum/maximum) included."""
    low = high = None
    if _number(schema.get("minimum")):
        low = math.ceil(schema["minimum"])
        low += 1 if schema.get("exclusiveMinimum") is True and low == schema["minimum"] else 0
    if _number(schema.get("exclusiveMinimum")):
        above = math.floor(schema["exclusiveMinimum"]) + 1
        low = above if low is None else max(low, above)
    if _number(schema.get("maximum")):
        high = math.floor(schema["maximum"])
        high -= 1 if schema.get("exclusiveMaximum") is True and high == schema["maximum"] else 0
    if _number(schema.get("exclusiveMaximum")):
        below = math.ceil(schema["exclusiveMaximum"]) - 1
        high = below if high is None else min(high, below)
    return low, high


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@functools.lru_cache(maxsize=64)
def _grammar(schema: str) -> Any:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return _from_rules(json_schema_to_gbnf(schema).replace(_LOOSE_CHAR, _JSON_CHAR))


@functools.lru_cache(maxsize=64)
def _from_rules(rules: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(rules, verbose=False)
