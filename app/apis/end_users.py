"""A request's end user: the person the application asks for, by the application's own id. The
X-ChatWait-User header, else the family's own field as its intake passes it on (OpenAI's
`safety_identifier`, else `user`; the Messages API's `metadata.user_id` and the native API's
`user`, both passed on as `user`). Bounded: at most MAX_CHARS characters (the longest a family
takes: the Messages API's), none of them a control character; a clear 400 otherwise. A field
that is blank names no end user; a blank header is a 400."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ApiError

HEADER = "X-ChatWait-User"
ENVIRON = "HTTP_X_CHATWAIT_USER"  # the header in a WSGI environ (read there: no header lookup per request)
MAX_CHARS = 1024
FIELDS = ("safety_identifier", "user")  # in a call's options, first found first
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode's control characters (category Cc)


def end_user(environ: Mapping[str, Any], options: Mapping[str, Any]) -> str | None:
    """The request's end user (None: it names none), from its WSGI environ and its call's options."""
    given = environ.get(ENVIRON)
    if given is not None:
        return _checked(HEADER, given)
    for name in FIELDS:
        found = options.get(name)
        if isinstance(found, str) and found.strip():
            return _checked(name, found)
    return None


def _checked(where: str, value: str) -> str:
    if not value.strip() or len(value) > MAX_CHARS or _CONTROL.search(value):
        message = f"An end user's id is 1 to {MAX_CHARS} characters, not only spaces, and no control characters."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={where: [message]})
    return value
