"""The tools a Responses client runs, and their calls named as it expects them back.

A client sends function tools, `custom` tools (free-form text input, optionally a grammar) and
`namespace` tools (function and custom tools grouped under a name; Codex CLI sends one by
default). A chat completions server knows function tools only: a custom tool goes to it as a
function of one string, `input`; a namespace's tools as functions named `namespace__name`. The
calls come back as the client sent the tools (`Called`): a `custom_tool_call` with its input, a
`function_call` with its `namespace`. Hosted tools (run on OpenAI's own servers) are left out and
named (`unknown`), or refused when the contract is strict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from ..functions import MAX_TOOLS, NAME, TOOL_CHOICES, check_name
from ..schema import NullMeansAbsent, StrictBoolean, Text
from ..unknown import leave_out

SEPARATOR = "__"  # between a namespace and its tool's name, in the name the model is sent
FUNCTION_FIELDS = ("name", "description", "parameters", "strict")
CLIENT_TOOLS = ("function", "custom", "namespace")
GRAMMAR_SYNTAXES = ("lark", "regex")
MAX_GRAMMAR_CHARS = 100_000
FREEFORM = {  # a custom tool's parameters, as a chat completions server is sent them
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's input, as free-form text."}},
    "required": ["input"],
    "additionalProperties": False,
}


class FunctionToolSchema(NullMeansAbsent):
    """A function the model may call: its name, what it does, its JSON Schema parameters."""

    type = fields.String(required=True, validate=validate.OneOf(("function",)))
    name = Text(required=True, validate=check_name)
    description = Text()
    parameters = fields.Dict(keys=fields.String())
    strict = StrictBoolean()


class InputFormat(fields.Field):
    """A custom tool's input: `{"type": "text"}` (any text) or `{"type": "grammar", "syntax":
    "lark" | "regex", "definition": ...}` (told to the model; not enforced on its output)."""

    json_types = ("object",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, dict) and value.get("type") == "text" and set(value) == {"type"}:
            return value
        definition = value.get("definition") if isinstance(value, dict) else None
        if (
            isinstance(value, dict)
            and value.get("type") == "grammar"
            and set(value) == {"type", "syntax", "definition"}
            and value["syntax"] in GRAMMAR_SYNTAXES
            and isinstance(definition, str)
            and len(definition) <= MAX_GRAMMAR_CHARS
        ):
            return value
        raise ValidationError(
            f'Must be {{"type": "text"}} or {{"type": "grammar", "syntax": "lark" | "regex", "definition": ...}} '
            f"(at most {MAX_GRAMMAR_CHARS} characters)."
        )


class CustomToolSchema(NullMeansAbsent):
    """A tool whose input is free-form text: its name, what it does, the input's format."""

    type = fields.String(required=True, validate=validate.OneOf(("custom",)))
    name = Text(required=True, validate=check_name)
    description = Text()
    format = InputFormat()


_INNER = {"function": FunctionToolSchema, "custom": CustomToolSchema}


def _load(index: int, tool: Any, kinds: Mapping[str, type], path: tuple[Any, ...]) -> dict[str, Any] | str:
    """One tool, validated; or the kind of a hosted tool left out (`path`: where the tools are;
    empty: a namespace's, which holds none)."""
    kind = tool.get("type") if isinstance(tool, dict) else None
    if isinstance(kind, str) and kind in kinds:
        return kinds[kind]().load(tool)
    if path and isinstance(kind, str) and leave_out((*path, index, kind)):
        return kind  # a hosted tool (Codex sends web_search by default): left out, named
    raise ValidationError(
        [f"Tool {index} is of type {str(kind)[:40]!r}: ChatWait takes {', '.join(kinds)} tools "
         "(hosted tools run on OpenAI's own servers)."]
    )  # fmt: skip


def _tools(value: Any, kinds: Mapping[str, type], path: tuple[Any, ...]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise ValidationError(f"Must be a list of at most {MAX_TOOLS} tools.")
    tools, errors = [], {}
    for index, tool in enumerate(value):
        try:
            loaded = _load(index, tool, kinds, path)
        except ValidationError as exc:
            errors[index] = exc.messages
            continue
        if isinstance(loaded, dict):
            tools.append(loaded)
    if errors:
        raise ValidationError(errors)
    return tools


class InnerTools(fields.Field):
    """A namespace's tools: function and custom tools."""

    json_types = ("array",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return _tools(value, _INNER, ())


class NamespaceToolSchema(NullMeansAbsent):
    """Function and custom tools the client groups under a name (its calls carry `namespace`)."""

    type = fields.String(required=True, validate=validate.OneOf(("namespace",)))
    name = Text(required=True, validate=check_name)
    description = Text()
    tools = InnerTools(required=True)


class Tools(fields.Field):
    """`tools`: function, custom and namespace tools; hosted ones left out and named (or refused)."""

    json_types = ("array",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return _tools(value, {**_INNER, "namespace": NamespaceToolSchema}, ("tools",))


class ItemTools(fields.Field):
    """An `additional_tools` item's tools: as `tools` (hosted ones left out and named)."""

    json_types = ("array",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return _tools(value, {**_INNER, "namespace": NamespaceToolSchema}, ("input", 0, "tools"))


class ToolChoice(fields.Field):
    """`none`, `auto`, `required`, `{"type": "function" | "custom", "name": ...}`; a hosted tool's
    choice is left out with its tool (the model chooses)."""

    json_types = ("string", "object")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value in TOOL_CHOICES:
            return value
        kind = value.get("type") if isinstance(value, dict) else None
        if (
            kind in ("function", "custom")
            and set(value) == {"type", "name"}
            and isinstance(value["name"], str)
            and NAME.fullmatch(value["name"])
        ):
            return value
        if (
            isinstance(kind, str)
            and kind not in CLIENT_TOOLS
            and kind != "allowed_tools"
            and leave_out(("tool_choice", kind))
        ):
            return "auto"
        raise ValidationError('Must be "none", "auto", "required" or {"type": "function" | "custom", "name": ...}.')


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
