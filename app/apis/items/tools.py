"""The tools a Responses client declares, checked: in a request's `tools` and `tool_choice`, and
in an `additional_tools` item of its input or of a conversation.

A client sends function tools, `custom` tools (free-form text input, optionally a grammar) and
`namespace` tools (function and custom tools grouped under a name; Codex CLI sends one by
default). Hosted tools (run on OpenAI's own servers) are left out and named (`unknown`), or
refused when the contract is strict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from ..functions import MAX_TOOLS, NAME, TOOL_CHOICES, check_name
from ..schema import NullMeansAbsent, StrictBoolean, Text
from ..unknown import leave_out

CLIENT_TOOLS = ("function", "custom", "namespace")
GRAMMAR_SYNTAXES = ("lark", "regex")
MAX_GRAMMAR_CHARS = 100_000


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
        [
            f"Tool {index} is of type {str(kind)[:40]!r}: ChatWait takes {', '.join(kinds)} tools "
            "(hosted tools run on OpenAI's own servers)."
        ]
    )


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
