"""Structured output and forced tool calls on the embedded model: llama.cpp's grammar-constrained
decoding, with the grammar made from the JSON Schema the request gives."""

from __future__ import annotations

import functools
import json
from typing import Any

# llama-cpp-python's JSON Schema converter lets a string hold raw control characters (a newline
# inside a string is not JSON); the rule llama.cpp itself now writes excludes them.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
ANY_OBJECT = {"type": "object"}


def forced_tool(options: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a call forces (tool_choice naming it, or `required` with one tool), or None."""
    tools, choice = options.get("tools") or [], options.get("tool_choice", "auto")
    if isinstance(choice, dict):
        return next((tool for tool in tools if tool["function"]["name"] == choice["function"]["name"]), None)
    return tools[0] if choice == "required" and len(tools) == 1 else None


def structured(options: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON Schema the reply must follow (None: free text) and the forced tool's name (None:
    the reply is the message's content)."""
    tool = forced_tool(options)
    if tool is not None:
        return tool["function"].get("parameters") or ANY_OBJECT, tool["function"]["name"]
    form = options.get("response_format")
    if form is not None and form["type"] == "json_schema":
        return form["json_schema"].get("schema") or ANY_OBJECT, None
    if form is not None and form["type"] == "json_object":
        return ANY_OBJECT, None
    return None, None


def json_grammar(schema: dict[str, Any]) -> Any:
    """A llama.cpp grammar whose every output is JSON that validates against `schema`."""
    return _grammar(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _grammar(schema: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    rules = json_schema_to_gbnf(schema)
    return LlamaGrammar.from_string(rules.replace(_LOOSE_CHAR, _JSON_CHAR), verbose=False)
