"""The route nearest to a path no route matches, for a 404 that says where the client may have
meant to go (a typo, a missing /v1, a singular for a plural)."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable

from werkzeug.routing import Rule

MAX_PATH_CHARS = 200  # a longer path is compared by its start only
CUTOFF = 0.75  # how alike a route must be to be named
_VARIABLE = re.compile(r"<(?:[^>:]+:)?[^>]+>")
_CONVERTER = re.compile(r"<[^>:]+:([^>]+)>")
_SHOWN_METHODS = ("GET", "POST", "DELETE")


@functools.lru_cache(maxsize=256)
def route_label(rule: str) -> str:
    """A route as clients and metrics name it: its variables without their converters
    (`/v1/responses/<response_id>`)."""
    return _CONVERTER.sub(r"<\1>", rule)


class Routes:
    """The app's routes as a client would call them: method(s) and path pattern."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules = [
            (route_label(rule.rule), "/".join(m for m in _SHOWN_METHODS if m in (rule.methods or ())))
            for rule in rules
            if rule.endpoint != "static"
        ]

    def nearest(self, path: str) -> str | None:
        """`METHOD /pattern` of the route most like `path`, or None when none is alike enough."""
        path = path[:MAX_PATH_CHARS]
        candidates: dict[str, str] = {}
        for pattern, methods in self._rules:
            filled = _filled(pattern, path)
            candidates.setdefault(filled, f"{methods} {pattern}")
        found = difflib.get_close_matches(path, list(candidates), n=1, cutoff=CUTOFF)
        return candidates[found[0]] if found else None


def _filled(pattern: str, path: str) -> str:
    """`pattern` with each variable taken from the same segment of `path` (so that an id does not
    count as a difference), or left as it is where `path` has no such segment."""
    segments = path.split("/")
    parts = pattern.split("/")
    return "/".join(
        segments[index] if _VARIABLE.fullmatch(part) and index < len(segments) else part
        for index, part in enumerate(parts)
    )
