"""Which shape an error body takes, by the path it answers. Each API family registers its shape
for its path prefixes when the app is built (`register`); the longest matching prefix wins, and
any other path takes the service's own shape: the catalogue's body (`ErrorSchema`). Shared by
the app's error handlers and the server shell's own answers (414, 431, 408, 400 before the app
sees a request)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from marshmallow import fields

from ..errors import ApiError
from .schema import StrictSchema, serialise

Shape = Callable[[ApiError, str | None], dict[str, Any]]  # (error, correlation id) -> body
Status = Callable[[ApiError], int]  # error -> the HTTP status a family answers it with


class ErrorSchema(StrictSchema):
    """The service's own error body (every path no family claims, and the native API's), and the
    data of the native SSE `error` event minus its stream fields."""

    error_code = fields.String(required=True)
    message = fields.String(required=True)
    detail = fields.String(required=True)
    action = fields.String(required=True)
    retryable = fields.Boolean(required=True)
    correlation_id = fields.String(required=True, allow_none=True)
    fields_ = fields.Dict(data_key="fields", attribute="fields")
    retry_after_seconds = fields.Float()
    drop_history_messages = fields.Integer()


def own_shape(error: ApiError, correlation_id: str | None) -> dict[str, Any]:
    """The catalogue's body of `error`."""
    return serialise(ErrorSchema, error.body(correlation_id))


_SHAPES: dict[str, Shape] = {}  # by path prefix
_STATUSES: dict[str, Status] = {}  # by path prefix, for families whose statuses differ from the catalogue's
_ORDER: list[str] = []  # the prefixes, longest first


def register(prefixes: Iterable[str], shape: Shape, status: Status | None = None) -> None:
    """Errors on paths that start with one of `prefixes` take `shape`, and `status` where given
    (registering again replaces)."""
    for prefix in prefixes:
        _SHAPES[prefix] = shape
        if status is not None:
            _STATUSES[prefix] = status
    _ORDER[:] = sorted(_SHAPES, key=len, reverse=True)


def _prefix(path: str) -> str | None:
    return next((prefix for prefix in _ORDER if path.startswith(prefix)), None)


def error_body(error: ApiError, correlation_id: str | None, path: str) -> dict[str, Any]:
    """The JSON body of `error` in the shape of `path`'s family."""
    prefix = _prefix(path)
    return own_shape(error, correlation_id) if prefix is None else _SHAPES[prefix](error, correlation_id)


def error_status(error: ApiError, path: str) -> int:
    """The HTTP status of `error` on `path`: the catalogue's, unless the path's family says otherwise."""
    status = _STATUSES.get(_prefix(path) or "")
    return error.status if status is None else status(error)
