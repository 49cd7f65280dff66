"""The tools a Responses client runs, as the model is sent them, and their calls named as the
client expects them back.

A chat completions server knows function tools only: a custom tool goes to it as a function of
one string, `input`; a namespace's tools as functions named `namespace__name`. The calls come
back as the client sent the tools (`Called`): a `custom_tool_call` with its input, a
`function_call` with its `namespace`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

SEPARATOR = "__"  # between a namespace and its tool's name, in the name the model is sent
FUNCTION_FIELDS = ("name", "description", "parameters", "strict")
FREEFORM = {  # a custom tool's parameters, as a chat completions server is sent them
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's input, as free-form text."}},
    "required": ["input"],
    "additionalProperties": False,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Called:
    """A tool as the client named it: its namespace (None: none), its name, whether it is custom."""

    namespace: str | None
    name: str
    custom: bool


def sent_name(namespace: str | None, name: str) -> str:
    """The name the model is sent for tool `name` of `namespace`."""
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


def _flat(tools: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Each tool the model is sent, with its name: a namespace's tools in its place."""
    for tool in tools:
        if tool.get("type") == "namespace":
            for inner in tool["tools"]:
                yield sent_name(tool["name"], inner["name"]), {**inner, "namespace": tool}
        else:
            yield tool["name"], tool


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools in chat completions' terms: every one a function."""
    return [{"type": "function", "function": _function(name, tool)} for name, tool in _flat(tools)]


def _function(name: str, tool: Mapping[str, Any]) -> dict[str, Any]:
    namespace = tool.get("namespace")
    said = [text for text in (namespace and namespace.get("description"), tool.get("description")) if text]
    if tool["type"] == "function":
        function = {key: tool[key] for key in FUNCTION_FIELDS if key in tool}
    else:
        grammar = tool.get("format") or {}
        if grammar.get("type") == "grammar":
            said.append(f"The input follows this {grammar['syntax']} grammar:\n{grammar['definition']}")
        function = {"parameters": FREEFORM}
    if said:
        function["description"] = "\n\n".join(said)
    return {**function, "name": name}


def chosen(choice: Mapping[str, Any], tools: list[dict[str, Any]]) -> str:
    """The name the model is sent for the tool a `{"type", "name"}` choice names (a namespace's
    tool by its own name where no tool outside a namespace has it)."""
    name = choice["name"]
    inner = [sent for sent, tool in _flat(tools) if tool["name"] == name]
    return name if name in (sent for sent, _ in _flat(tools)) or not inner else inner[0]


def echoed(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools as the Response object repeats them: every field, null where not sent."""
    return [_echoed(tool) for tool in tools]


def _echoed(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool["type"] == "function":
        return {"type": "function", **dict.fromkeys(FUNCTION_FIELDS), **tool}
    if tool["type"] == "custom":
        return {"type": "custom", "name": tool["name"], "description": None, "format": {"type": "text"}, **tool}
    return {"type": "namespace", "description": None, **tool, "tools": echoed(tool["tools"])}


def callables(tools: Iterable[Mapping[str, Any]] | None) -> dict[str, Called]:
    """The custom and namespaced tools by the name the model is sent (a function outside a
    namespace is called by its own name)."""
    found = {}
    for sent, tool in _flat(tools or ()):
        namespace = tool.get("namespace")
        if namespace or tool["type"] == "custom":
            found[sent] = Called(namespace and namespace["name"], tool["name"], tool["type"] == "custom")
    return found


def called_names(tools: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """`callables(tools)` as JSON (kept in a stream's echo, for every worker to name calls alike)."""
    return {sent: [called.namespace, called.name, called.custom] for sent, called in callables(tools).items()}


def callables_of(names: Mapping[str, list[Any]]) -> dict[str, Called]:
    """What `called_names` kept, as `callables` gave it."""
    return {sent: Called(*entry) for sent, entry in names.items()}
