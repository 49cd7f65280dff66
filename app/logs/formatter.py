"""The JSON line format: python-json-logger's orjson formatter with a UTC timestamp first,
redacted as a whole."""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import logging
from collections.abc import Sequence
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from .redaction import literal_redactor, redact

_RESERVED = frozenset(RESERVED_ATTRS)
# How many attributes LogRecord's constructor sets: a record's `extra` fields and the ids the
# filter stamps come after them in its __dict__.
_STANDARD_FIELDS = len(logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__)


class RedactingJsonFormatter(OrjsonFormatter):
    """python-json-logger's orjson formatter: UTC ISO-8601 timestamp, level, event; redacts the
    final line, the configured `secrets` first (as they are, and as JSON escapes them), then
    every pattern.

    The timestamp is joined after redaction, so the date's digits are never scanned for phone
    and card numbers. A record without exception or stack information (nearly every line) is
    serialized directly: the same fields in the same order as the base class gives, without
    its generic field machinery. What orjson cannot encode (an integer past 64 bits) goes
    through the standard library's encoder instead.
    """

    def __init__(self, *args: Any, secrets: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "message": "event", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)
        self._secrets = literal_redactor(secrets)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """orjson's JSON of the line (the standard library's for what orjson refuses)."""
        try:
            return super().jsonify_log_record(log_data)
        except TypeError:
            return json.dumps(log_data, default=str, separators=(",", ":"))

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        """The base class's fields, without empty ids."""
        super().add_fields(log_data, record, message_dict)
        _drop_empty_ids(log_data)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            body = super().format(record)
        else:
            fields = {"level": record.levelname, "logger": record.name, "event": record.getMessage()}
            for key, value in itertools.islice(record.__dict__.items(), _STANDARD_FIELDS, None):
                if key not in _RESERVED and key[:1] != "_":
                    fields[key] = value
            _drop_empty_ids(fields)
            body = self.serialize_log_record(fields)
        return f'{{"timestamp":"{_timestamp(record)}",{redact(self._secrets(body))[1:]}'


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _timestamp(record: logging.LogRecord) -> str:
    """The record's time as UTC ISO-8601 with milliseconds (the second's text made once)."""
    return f"{_utc_second(int(record.created))}.{int(record.msecs):03d}Z"


def _drop_empty_ids(fields: dict[str, Any]) -> None:
    for key in ("correlation_id", "stream_id"):
        if fields.get(key) is None:
            fields.pop(key, None)
