"""The content parts of a Responses API message, and of a tool's output, as chat parts: text
(`input_text`, `output_text`, `refusal`), an image (`input_image`, as an `image_url` part) and a
file (`input_file`, as `apis/files` makes it); a field a part does not have is left out and named."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from ..files import file_part
from ..functions import image_url_ok
from ..openai import MessageContent
from ..schema import text_of
from ..unknown import UNKNOWN

TEXT_PARTS = ("input_text", "output_text")
FILE_DETAILS = (None, "auto", "low", "high")
# Each part type: its fields (any other is unknown: left out and named).
_PART_FIELDS = {
    "input_text": ("text", "annotations", "logprobs"),  # as output_text: some clients send them back so
    "output_text": ("text", "annotations", "logprobs"),
    "refusal": ("refusal",),
    "input_image": ("image_url", "detail", "file_id"),
    "input_file": ("file_data", "filename", "file_id", "file_url", "detail"),
}
_PARTS = "input_text, output_text, refusal, input_image and input_file parts"


def input_part(index: int, part: Any) -> dict[str, Any]:
    """One part of a message's content, as a chat part (an image an `image_url`, a file `files`')."""
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(kind, str) or kind not in _PART_FIELDS:
        raise ValidationError(f"Part {index} is of type {str(kind)[:40]!r}: ChatWait takes {_PARTS}.")
    unknown = set(part) - {"type", *_PART_FIELDS[kind]}
    if unknown:  # as marshmallow names them: the tolerant contract takes them out and names them
        raise ValidationError({name: [UNKNOWN] for name in sorted(unknown)})
    if kind in TEXT_PARTS:
        listed = all(_objects(part.get(name, [])) for name in ("annotations", "logprobs"))
        if listed and isinstance(part.get("text"), str):
            return {"type": "text", "text": text_of(part["text"])}
    elif kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": text_of(part["refusal"])}
    elif kind == "input_image":
        return _image(index, part)
    elif kind == "input_file":
        if part.get("detail") not in FILE_DETAILS:
            raise ValidationError(f"Part {index}: a file's detail is auto, low or high.")
        given = {"data": part.get("file_data"), "file_id": part.get("file_id"), "url": part.get("file_url")}
        try:
            return file_part(filename=part.get("filename"), **given)
        except ValidationError as error:
            raise ValidationError(f"Part {index}: {error.messages[0]}") from None
    raise ValidationError(f"Part {index} is not a well-formed {kind} part.")


def _image(index: int, part: dict[str, Any]) -> dict[str, Any]:
    if part.get("file_id") is not None:
        raise ValidationError(
            f"Part {index}: ChatWait keeps no files: send the image as image_url (a URL or a data URL)."
        )
    url, detail = part.get("image_url"), part.get("detail")
    detail = "auto" if detail is None else detail
    detail = "high" if detail == "original" else detail  # the most a chat completions server renders
    if image_url_ok(url, detail):
        return {"type": "image_url", "image_url": {"url": url, "detail": detail}}
    raise ValidationError(
        f'Part {index} must be {{"type": "input_image", "image_url": "https://..." or "data:image/png;base64,...", '
        '"detail": "auto" | "low" | "high" | "original"}.'
    )


def _objects(value: Any) -> bool:
    """Whether `value` is a list of JSON objects (a part's annotations or logprobs, sent back as they came)."""
    return isinstance(value, list) and all(isinstance(entry, dict) for entry in value)


class ToolOutput(fields.Field):
    """A tool's output: a string, or `input_text`, `input_image` and `input_file` parts (text
    parts joined by newlines; images and files, which a chat completions server takes from users
    only, follow the tool messages as a user message: `to_messages`)."""

    json_types = ("string", "array")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            return text_of(value)
        if not isinstance(value, list) or not all(
            isinstance(part, dict) and part.get("type") in ("input_text", "input_image", "input_file") for part in value
        ):
            raise ValidationError("Must be a string, or a list of input_text, input_image and input_file parts.")
        parts = MessageContent(input_part).deserialize(value) if value else ""
        return parts
