"""The bad-input list, shared by the unit (Flask client) and integration (real socket) tests.

Each case: an id, method, path, headers, raw body, the expected status and error_code.
"""

from __future__ import annotations

import json

JSON = {"Content-Type": "application/json"}
DEPTH = 20_000  # far beyond the parser's recursion limit, well under MAX_BODY_BYTES


def _body(**fields: object) -> bytes:
    return json.dumps({"message": "hello", **fields}).encode()


CASES = [
    ("malformed_json", "POST", "/v1/chat/wait", JSON, b'{"message": "hi"', 400, "invalid_json"),
    ("trailing_garbage", "POST", "/v1/chat/streaming", JSON, b'{"message": "hi"} x', 400, "invalid_json"),
    ("empty_body", "POST", "/v1/chat/wait", JSON, b"", 400, "invalid_json"),
    ("invalid_utf8", "POST", "/v1/chat/wait", JSON, b'{"message": "\xff\xfe\xfd"}', 400, "invalid_json"),
    ("overlong_utf8", "POST", "/v1/chat/streaming", JSON, b'{"message": "\xc0\xaf"}', 400, "invalid_json"),
    (
        "deep_nesting",
        "POST",
        "/v1/chat/wait",
        JSON,
        b'{"message": "x", "history": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
        400,
        "invalid_json",
    ),
    ("nan", "POST", "/v1/chat/wait", JSON, b'{"message": "x", "temperature": NaN}', 400, "invalid_json"),
    ("infinity", "POST", "/v1/chat/wait", JSON, b'{"message": "x", "temperature": -Infinity}', 400, "invalid_json"),
    ("float_overflow", "POST", "/v1/chat/wait", JSON, b'{"message": "x", "temperature": 1e400}', 400, "invalid_json"),
    (
        "int_too_many_digits",
        "POST",
        "/v1/chat/wait",
        JSON,
        b'{"message": "x", "max_tokens": ' + b"9" * 5000 + b"}",
        400,
        "invalid_json",
    ),
    ("huge_int", "POST", "/v1/chat/wait", JSON, _body(max_tokens=10**30), 400, "validation_error"),
    ("huge_float", "POST", "/v1/chat/wait", JSON, _body(temperature=1e308), 400, "validation_error"),
    ("huge_int_temperature", "POST", "/v1/chat/wait", JSON, _body(temperature=10**40), 400, "validation_error"),
    ("lone_surrogate", "POST", "/v1/chat/wait", JSON, b'{"message": "hi \\ud800 there"}', 400, "validation_error"),
    (
        "lone_surrogate_history",
        "POST",
        "/v1/chat/streaming",
        JSON,
        _body(history=[{"role": "user", "content": "\ud800"}]).replace(b"\\ud800", b"\\udfff"),
        400,
        "validation_error",
    ),
    ("message_number", "POST", "/v1/chat/wait", JSON, b'{"message": 123}', 400, "validation_error"),
    ("message_null", "POST", "/v1/chat/wait", JSON, b'{"message": null}', 400, "validation_error"),
    ("message_missing", "POST", "/v1/chat/wait", JSON, b'{"history": []}', 400, "validation_error"),
    ("message_empty", "POST", "/v1/chat/wait", JSON, b'{"message": ""}', 400, "validation_error"),
    ("message_blank", "POST", "/v1/chat/streaming", JSON, b'{"message": " \\n\\t "}', 400, "validation_error"),
    ("message_too_long", "POST", "/v1/chat/wait", JSON, _body(message="x" * 8001), 400, "validation_error"),
    ("body_array", "POST", "/v1/chat/wait", JSON, b"[]", 400, "validation_error"),
    ("body_string", "POST", "/v1/chat/wait", JSON, b'"hello"', 400, "validation_error"),
    ("body_null", "POST", "/v1/chat/streaming", JSON, b"null", 400, "validation_error"),
    ("unknown_field", "POST", "/v1/chat/wait", JSON, _body(stream=True), 400, "validation_error"),
    ("history_not_list", "POST", "/v1/chat/wait", JSON, _body(history="earlier"), 400, "validation_error"),
    ("history_item_number", "POST", "/v1/chat/wait", JSON, _body(history=[1]), 400, "validation_error"),
    (
        "history_bad_role",
        "POST",
        "/v1/chat/wait",
        JSON,
        _body(history=[{"role": "robot", "content": "x"}]),
        400,
        "validation_error",
    ),
    (
        "history_unknown_key",
        "POST",
        "/v1/chat/wait",
        JSON,
        _body(history=[{"role": "user", "content": "x", "name": "a"}]),
        400,
        "validation_error",
    ),
    (
        "history_too_many",
        "POST",
        "/v1/chat/wait",
        JSON,
        _body(history=[{"role": "user", "content": "x"}] * 201),
        400,
        "validation_error",
    ),
    ("system_number", "POST", "/v1/chat/wait", JSON, _body(system=5), 400, "validation_error"),
    ("model_not_allowed", "POST", "/v1/chat/wait", JSON, _body(model="gpt-evil"), 400, "validation_error"),
    ("max_tokens_string", "POST", "/v1/chat/wait", JSON, _body(max_tokens="5"), 400, "validation_error"),
    ("max_tokens_fraction", "POST", "/v1/chat/wait", JSON, _body(max_tokens=1.5), 400, "validation_error"),
    ("max_tokens_bool", "POST", "/v1/chat/wait", JSON, _body(max_tokens=True), 400, "validation_error"),
    ("max_tokens_zero", "POST", "/v1/chat/wait", JSON, _body(max_tokens=0), 400, "validation_error"),
    ("max_tokens_over_limit", "POST", "/v1/chat/wait", JSON, _body(max_tokens=100_000_001), 400, "validation_error"),
    ("temperature_string", "POST", "/v1/chat/wait", JSON, _body(temperature="hot"), 400, "validation_error"),
    ("temperature_bool", "POST", "/v1/chat/wait", JSON, _body(temperature=False), 400, "validation_error"),
    ("temperature_range", "POST", "/v1/chat/wait", JSON, _body(temperature=2.5), 400, "validation_error"),
    ("no_content_type", "POST", "/v1/chat/wait", {}, _body(), 415, "unsupported_media_type"),
    (
        "text_plain",
        "POST",
        "/v1/chat/streaming",
        {"Content-Type": "text/plain"},
        _body(),
        415,
        "unsupported_media_type",
    ),
    (
        "form",
        "POST",
        "/v1/chat/wait",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"message=hi",
        415,
        "unsupported_media_type",
    ),
    ("too_large", "POST", "/v1/chat/wait", JSON, _body(message="x" * 2_000_000), 413, "payload_too_large"),
    ("unknown_path", "GET", "/v2/nothing", {}, b"", 404, "not_found"),
    ("page_post", "POST", "/", {}, b"", 405, "method_not_allowed"),
    ("unknown_path", "POST", "/v2/chat", {}, b"", 404, "not_found"),
    ("wait_get", "GET", "/v1/chat/wait", {}, b"", 405, "method_not_allowed"),
    ("stream_put", "PUT", "/v1/chat/streaming/abc", JSON, b"{}", 405, "method_not_allowed"),
    ("health_post", "POST", "/health", JSON, b"{}", 405, "method_not_allowed"),
]

ERROR_FIELDS = {"error_code", "message", "detail", "action", "retryable", "correlation_id"}
