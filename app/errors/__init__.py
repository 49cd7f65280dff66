"""The one error catalogue: every error a client can get, and the JSON object that carries it.

Each entry says what happened (`message`), what to do (`action`), whether the same request
may succeed later (`retryable`), the HTTP status, and for errors that promise a retry, the
delay to send in Retry-After. A raised ApiError adds `detail` (why). Nothing else ever
reaches a client: no HTML error page, no stack trace, no upstream text. This module is plain
Python (no web framework): the worker answers protocol errors with it before any app code runs;
`app.http.errors` renders it for Flask.
"""

from __future__ import annotations

from typing import Any

from .catalogue import CATALOGUE
from .kind import ErrorKind

__all__ = ["CATALOGUE", "ApiError", "ErrorKind", "RequestBodyError", "RequestReadTimeout"]


class ApiError(Exception):
    """An error from the catalogue, raised anywhere and rendered as its JSON body."""

    def __init__(
        self,
        error_code: str,
        detail: str | None = None,
        *,
        action: str | None = None,
        fields: dict[str, Any] | None = None,
        retry_after: float | None = None,
        drop_history_messages: int | None = None,
    ) -> None:
        super().__init__(error_code)
        self.kind = CATALOGUE[error_code]
        self.error_code = error_code
        self.detail = detail
        self.action = action or self.kind.action
        self.fields = fields
        self.retry_after = retry_after if retry_after is not None else self.kind.retry_after
        self.drop_history_messages = drop_history_messages  # input_too_long: how many oldest to drop

    @property
    def operator_action(self) -> str:
        """What the log says to do: the operator's hint where the catalogue has one, else `action`."""
        return self.kind.operator or self.action

    @property
    def status(self) -> int:
        """The HTTP status of this error."""
        return self.kind.status

    @property
    def retry_after_header(self) -> str | None:
        """The Retry-After header value (whole seconds, at least 1), or None."""
        if self.retry_after is None:
            return None
        return str(max(1, round(self.retry_after)))

    def body(self, correlation_id: str | None) -> dict[str, Any]:
        """The JSON error object shared by HTTP error responses and SSE `error` events."""
        body: dict[str, Any] = {
            "error_code": self.error_code,
            "message": self.kind.message,
            "detail": self.detail or self.kind.message,
            "action": self.action,
            "retryable": self.kind.retryable,
            "correlation_id": correlation_id,
        }
        if self.fields:
            body["fields"] = self.fields
        if self.retry_after is not None:
            body["retry_after_seconds"] = round(self.retry_after, 3)
        if self.drop_history_messages is not None:
            body["drop_history_messages"] = self.drop_history_messages
        return body


class RequestBodyError(Exception):
    """The request body could not be read; `error` is what to answer."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.error_code)
        self.error = error


class RequestReadTimeout(RequestBodyError, TimeoutError):
    """The body did not arrive by the request's deadline (a TimeoutError, as gunicorn's drain expects)."""

    def __init__(self, seconds: float) -> None:
        detail = f"The request body did not arrive within {seconds:g} s (REQUEST_READ_TIMEOUT_SECONDS)."
        super().__init__(ApiError("request_timeout", detail))
