"""The reply's format as the Responses API asks for it (`text.format`, and a conversation's
`configuration_update` item): plain text, a JSON object, or JSON that follows a schema."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from ..functions import check_json_schema


class TextFormat(fields.Field):
    """`{"type": "text"}`, `{"type": "json_object"}`, or `{"type": "json_schema", "name",
    "schema", "description"?, "strict"?}`."""

    json_types = ("object",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind in ("text", "json_object") and set(value) == {"type"}:
            return value
        if kind != "json_schema":
            raise ValidationError('Must be {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", ...}.')
        check_json_schema(value, ("type", "name", "description", "schema", "strict"))
        return value
