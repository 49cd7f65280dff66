"""Replies are serialised by their reply schemas: what a view sends is what the contract test checks."""

from __future__ import annotations

from app.apis.native.schemas import StopResultSchema
from app.apis.schema import serialise
from app.apis.shapes import ErrorSchema
from app.errors import ApiError


def test_a_reply_holds_the_fields_its_schema_declares_and_only_those() -> None:
    reply = serialise(StopResultSchema, {"stream_id": "s", "status": "cancelled", "last_event_id": 3, "extra": 1})
    assert reply == {"stream_id": "s", "status": "cancelled", "last_event_id": 3}


def test_an_error_keeps_the_fields_it_names() -> None:
    error = ApiError("validation_error", "Bad fields.", fields={"message": ["Missing data for required field."]})
    body = serialise(ErrorSchema, error.body("cid"))
    assert body == error.body("cid")
    assert body["fields"] == {"message": ["Missing data for required field."]}
