"""What the views send, shaped by the reply schemas: the schemas the contract test holds to
contracts/openapi.yaml are the ones that serialise every JSON reply, so no copy can drift."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema


@functools.cache
def _schema(cls: type[Schema]) -> Schema:
    return cls()


def serialise(cls: type[Schema], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as the reply schema `cls` sends it: the fields it declares, and only those."""
    return _schema(cls).dump(data)
