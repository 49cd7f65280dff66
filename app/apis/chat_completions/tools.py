"""What chat completions takes beyond text: function tools, the choice of tool, structured output
(`response_format`), an assistant's tool calls and content parts with images, checked here and
passed to the upstream as they are (an upstream that cannot honour one says so itself; the
embedded model's refusals come from `Provider.takes`)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from ..files import file_part
from ..functions import MAX_IMAGE_URL_CHARS, NAME, TOOL_CHOICES, check_json_schema, check_name, image_url_ok
from ..schema import NullMeansAbsent, StrictBoolean, StrictSchema, Text, text_of
from ..unknown import UNKNOWN


class FunctionSchema(NullMeansAbsent):
    """A function the model may call: its name, what it does, its JSON Schema parameters."""

    name = Text(required=True, validate=check_name)
    description = Text()
    parameters = fields.Dict(keys=fields.String())
    strict = StrictBoolean()


class ToolSchema(StrictSchema):
    """One tool: a function (tools that need OpenAI's own infrastructure cannot run here)."""

    type = fields.String(
        required=True,
        validate=validate.OneOf(("function",), error="Only function tools can be called through ChatWait."),
    )
    function = fields.Nested(FunctionSchema, required=True)


class CalledFunctionSchema(StrictSchema):
    """The function an assistant's tool call named, and its arguments as JSON text."""

    name = Text(required=True, validate=check_name)
    arguments = Text(required=True)


class ToolCallSchema(StrictSchema):
    """One tool call of an assistant message in the conversation."""

    id = Text(required=True, validate=validate.Length(min=1, max=256))
    type = fields.String(required=True, validate=validate.OneOf(("function",)))
    function = fields.Nested(CalledFunctionSchema, required=True)


class ToolChoice(fields.Field):
    """`none`, `auto`, `required`, or `{"type": "function", "function": {"name": ...}}`."""

    json_types = ("string", "object")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value in TOOL_CHOICES:
            return value
        function = value.get("function") if isinstance(value, dict) else None
        if (
            isinstance(function, dict)
            and value.get("type") == "function"
            and set(value) == {"type", "function"}
            and set(function) == {"name"}
            and isinstance(function["name"], str)
            and NAME.fullmatch(function["name"])
        ):
            return value
        raise ValidationError('Must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.')


class ResponseFormat(fields.Field):
    """`{"type": "text"}`, `{"type": "json_object"}`, or `{"type": "json_schema", "json_schema":
    {"name", "description"?, "schema"?, "strict"?}}`."""

    json_types = ("object",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind in ("text", "json_object") and set(value) == {"type"}:
            return value
        spec = value.get("json_schema") if kind == "json_schema" and set(value) == {"type", "json_schema"} else None
        if not isinstance(spec, dict):
            raise ValidationError(
                'Must be {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", '
                '"json_schema": {"name": ..., "schema": {...}}}.'
            )
        check_json_schema(spec)
        return value


# The part types, each holding a field of its own name (any other field is unknown: left out and named).
_PART_FIELDS = ("text", "refusal", "image_url", "file", "input_audio")
AUDIO_FORMATS = ("wav", "mp3")


def content_part(index: int, part: Any) -> dict[str, Any]:
    """One part of a message's content: `text`, `image_url` (an http(s) URL or an image's data
    URL), `file` (`apis/files`: a text file inlined), `input_audio` (passed on to a server that
    takes audio) and, in an assistant's message, `refusal` (read as text). Any of them may end a
    prefix to cache (`openai.marked`)."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _PART_FIELDS and set(part) - {"type", kind} and kind in part:
        raise ValidationError({name: [UNKNOWN] for name in sorted(set(part) - {"type", kind})})
    if kind in ("text", "refusal") and set(part) == {"type", kind} and isinstance(part[kind], str):
        return {"type": "text", "text": text_of(part[kind])}
    if kind == "image_url" and set(part) == {"type", "image_url"}:
        return {"type": "image_url", "image_url": _image(index, part["image_url"])}
    if kind == "file" and isinstance(part.get("file"), dict) and not set(part["file"]) - _FILE_FIELDS:
        given = part["file"]
        try:
            return file_part(data=given.get("file_data"), filename=given.get("filename"), file_id=given.get("file_id"))
        except ValidationError as error:
            raise ValidationError(f"Part {index}: {error.messages[0]}") from None
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": _audio(index, part.get("input_audio"))}
    if kind in _PART_FIELDS:
        raise ValidationError(f"Part {index} is not a well-formed {kind} part.")
    shown = str(kind)[:40]
    raise ValidationError(
        f"Part {index} is of type {shown!r}: ChatWait takes text, image_url, file and input_audio parts."
    )


_FILE_FIELDS = {"file_data", "filename", "file_id"}


def _audio(index: int, audio: Any) -> dict[str, Any]:
    if (
        isinstance(audio, dict)
        and set(audio) == {"data", "format"}
        and audio["format"] in AUDIO_FORMATS
        and isinstance(audio["data"], str)
        and 0 < len(audio["data"]) <= MAX_IMAGE_URL_CHARS
    ):
        return audio
    raise ValidationError(f'Part {index}: input_audio must be {{"data": "<base64>", "format": "wav" | "mp3"}}.')


def _image(index: int, image: Any) -> dict[str, Any]:
    if (
        not isinstance(image, dict)
        or not image_url_ok(image.get("url"), image.get("detail", "auto"))
        or set(image) - {"url", "detail"}
    ):
        raise ValidationError(
            f'Part {index}: image_url must be {{"url": "https://..." or "data:image/png;base64,...", '
            '"detail": "auto" | "low" | "high"}.'
        )
    return image
