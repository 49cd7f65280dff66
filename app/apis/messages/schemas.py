"""The request schemas of Anthropic's Messages API (POST /v1/messages and its count_tokens): what
Anthropic's clients send, checked as strictly as the other families check theirs. A message's
content is a string or a list of content blocks (`text`, `image`, `tool_use`, `tool_result`,
`thinking`, `redacted_thinking`), each checked by its type (`blocks`); anything ChatWait cannot
honour is refused with a 400 that names the field and says why (a server tool, which only a
Messages API server runs, is left out and named: `Tools`)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, pre_load, validate, validates, validates_schema

from ..functions import MAX_TOOLS, check_json_schema, check_name, check_schema_size
from ..schema import (
    StrictBoolean,
    StrictInteger,
    StrictNumber,
    StrictSchema,
    Text,
    check_message_count,
    check_model,
    text_of,
)
from ..unknown import leave_out
from .blocks import Content, SystemPrompt

MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 256
TOOL_CHOICES = ("auto", "any", "tool", "none")
_BLOCKS_OF = {
    "user": {"text", "image", "document", "search_result", "tool_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
    "system": {"text"},
}
EFFORTS = ("low", "medium", "high", "xhigh", "max")


class ToolSchema(StrictSchema):
    """A client tool: its name, description and the JSON Schema of its input."""

    name = Text(required=True)
    description = Text()
    input_schema = fields.Dict(required=True)
    type = fields.String(validate=validate.OneOf(("custom",), error="Only client tools (custom) are supported."))
    cache_control = fields.Dict()

    @validates("name")
    def _name(self, value: str, **_: Any) -> None:
        check_name(value)

    @validates("input_schema")
    def _schema(self, value: dict[str, Any], **_: Any) -> None:
        check_json_schema({"name": "input", "schema": value})


class Tools(fields.Field):
    """`tools`: client tools; a server tool (any other `type`: `web_search_20250305`...) is left
    out and named (a Messages API server still gets it, in the body as sent), or refused."""

    json_types = ("array",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or len(value) > MAX_TOOLS:
            raise ValidationError(f"Must be a list of at most {MAX_TOOLS} tools.")
        tools, errors = [], {}
        for index, tool in enumerate(value):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind != "custom":  # a server tool needs its name, as Anthropic's API says
                name = tool.get("name")
                try:
                    check_name(name if isinstance(name, str) else "")
                except ValidationError as exc:
                    errors[index] = {"name": exc.messages}
                    continue
                if leave_out(("tools", index, kind)):
                    continue
            try:
                tools.append(ToolSchema().load(tool))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return tools


class ToolChoiceSchema(StrictSchema):
    """How the model may use the tools: `auto`, `any` (one at least), `tool` (that one), `none`."""

    type = fields.String(required=True, validate=validate.OneOf(TOOL_CHOICES))
    name = Text()
    disable_parallel_tool_use = StrictBoolean()

    @validates("name")
    def _name(self, value: str, **_: Any) -> None:
        check_name(value)

    @validates_schema
    def _named(self, data: dict[str, Any], **_: Any) -> None:
        if (data["type"] == "tool") != ("name" in data):
            raise ValidationError("A `tool` choice names its tool; other choices name none.", "name")


class MessageSchema(StrictSchema):
    """One turn: a user's (text, images, tool results), an assistant's (text, tool calls,
    thinking), or a system message between turns (text; Claude Code sends them)."""

    role = fields.String(required=True, validate=validate.OneOf(("user", "assistant", "system")))
    content = Content(required=True)

    @validates_schema
    def _by_role(self, data: dict[str, Any], **_: Any) -> None:
        blocks = data["content"] if isinstance(data["content"], list) else []
        allowed = _BLOCKS_OF[data["role"]]
        wrong = [block["type"] for block in blocks if block["type"] not in allowed]
        if wrong:
            raise ValidationError(f"A {data['role']} message has no {wrong[0]} blocks.", "content")


class ThinkingSchema(StrictSchema):
    """Extended thinking: asked of the upstream as a reasoning effort."""

    type = fields.String(required=True, validate=validate.OneOf(("enabled", "disabled", "adaptive")))
    budget_tokens = StrictInteger(validate=validate.Range(min=1024))


class MetadataSchema(StrictSchema):
    """`metadata`: the end user's id, passed on as OpenAI's `user`."""

    user_id = Text(validate=validate.Length(max=1024), allow_none=True)


class OutputFormatSchema(StrictSchema):
    """`output_config.format`: the JSON Schema the reply's text follows (structured output)."""

    type = fields.String(required=True, validate=validate.OneOf(("json_schema",)))
    schema = fields.Dict(required=True, validate=check_schema_size)


class OutputConfigSchema(StrictSchema):
    """`output_config`: how hard the model thinks (`effort`, asked of the upstream as a reasoning
    effort) and the reply's format (asked as a `json_schema` response format)."""

    effort = fields.String(validate=validate.OneOf(EFFORTS))
    format = fields.Nested(OutputFormatSchema)


class CountTokensSchema(StrictSchema):
    """The body of POST /v1/messages/count_tokens: what the model would read."""

    model = fields.String(required=True)
    system = SystemPrompt()
    messages = fields.List(fields.Nested(MessageSchema), required=True)
    tools = Tools()
    tool_choice = fields.Nested(ToolChoiceSchema)
    thinking = fields.Nested(ThinkingSchema)
    output_config = fields.Nested(OutputConfigSchema)
    context_management = fields.Dict()  # server-side context editing: taken and ignored

    def __init__(self, *, max_messages: int = 202, allowed_models: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_messages = max_messages
        self.allowed_models = allowed_models

    @validates("messages")
    def _messages(self, value: list[Any], **_: Any) -> None:
        check_message_count(value, self.max_messages)

    @validates("model")
    def _model(self, value: str, **_: Any) -> None:
        check_model(value, self.allowed_models)

    @pre_load
    def _choice_of_server_tools(self, data: Any, **_: Any) -> Any:
        """A `tool_choice` that asks for a server tool (by name, or `any` when no client tool is
        given) is left out and named with it: the model chooses (a Messages API server still gets it)."""
        choice, tools = (data.get("tool_choice"), data.get("tools")) if isinstance(data, dict) else (None, None)
        if not isinstance(choice, dict) or not isinstance(tools, list) or ToolChoiceSchema().validate(choice):
            return data  # a choice that is not well formed is refused, named
        kinds = [(tool.get("type"), tool.get("name")) for tool in tools if isinstance(tool, dict)]
        kinds = [(kind, name) for kind, name in kinds if isinstance(name, str)]  # others: refused below
        server = {name for kind, name in kinds if isinstance(kind, str) and kind != "custom"}
        client = {name for kind, name in kinds if not (isinstance(kind, str) and kind != "custom")}
        kind, named = choice.get("type"), choice.get("name")
        by_name = kind == "tool" and isinstance(named, str) and named in server and named not in client
        any_of_them = kind == "any" and "name" not in choice and not client
        if server and (by_name or any_of_them) and leave_out(("tool_choice",)):
            return {key: value for key, value in data.items() if key != "tool_choice"}
        return data

    @validates_schema
    def _tools_named(self, data: dict[str, Any], **_: Any) -> None:
        choice = data.get("tool_choice")
        names = {tool["name"] for tool in data.get("tools", ())}
        if choice is not None and choice.get("name") is not None and choice["name"] not in names:
            raise ValidationError("Names no tool of `tools`.", "tool_choice")
        if choice is not None and choice["type"] in ("any", "tool") and not names:
            raise ValidationError("Asks for a tool call, and `tools` is empty.", "tool_choice")


class MessagesRequestSchema(CountTokensSchema):
    """The body of POST /v1/messages; bounds come from Settings."""

    max_tokens = StrictInteger(required=True, validate=validate.Range(min=1))
    stream = StrictBoolean()
    stop_sequences = fields.List(Text(validate=validate.Length(min=1, max=MAX_STOP_CHARS)))
    temperature = StrictNumber(validate=validate.Range(min=0, max=1))
    top_p = StrictNumber(validate=validate.Range(min=0, max=1))
    top_k = StrictInteger(validate=validate.Range(min=0))
    metadata = fields.Nested(MetadataSchema)
    service_tier = fields.String(validate=validate.OneOf(("auto", "standard_only")))

    @validates("stop_sequences")
    def _stops(self, value: list[str], **_: Any) -> None:
        if len(value) > MAX_STOP_SEQUENCES:
            raise ValidationError(f"At most {MAX_STOP_SEQUENCES} stop sequences.")
        for text in value:
            text_of(text)


# The contract's components these schemas mirror (tests/contract keeps them in step).
MESSAGES_COMPONENTS: dict[str, type[StrictSchema]] = {
    "MessagesRequest": MessagesRequestSchema,
    "MessagesCountTokensRequest": CountTokensSchema,
    "MessagesTurn": MessageSchema,
    "MessagesTool": ToolSchema,
    "MessagesToolChoice": ToolChoiceSchema,
    "MessagesThinking": ThinkingSchema,
    "MessagesMetadata": MetadataSchema,
    "MessagesOutputConfig": OutputConfigSchema,
    "MessagesOutputFormat": OutputFormatSchema,
}
