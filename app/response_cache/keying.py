"""What a response cache entry is found by: a digest of everything that can change the answer
(the model, the whole input after ChatWait's fitting, tools, output format, every sampling
parameter, the fields passed on) and of whose cache it is; and whether a request is sampled."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..providers.call import ChatCall

VERSION = b"chatwait-response-cache-1"
# Fields that name who asks or how the answer is carried, never what it says.
IGNORED = frozenset(("user", "safety_identifier", "metadata", "stream", "stream_options", "store", "background"))


def digest(call: ChatCall, scope: str, user: str = "") -> str | None:
    """The entry `call` is kept under in `scope`'s cache (a key's name; "" when shared), apart for
    the end user `user` (RESPONSE_CACHE_SCOPE=end_user), or None when part of it cannot be written
    down exactly (then it is not cached)."""
    native = call.native
    if native is not None and isinstance(native.get("body"), dict):
        native = {**native, "body": _kept(native["body"])}
    found = [scope, call.model, call.messages, call.max_tokens, call.temperature, _kept(call.options)]
    if user:
        found.append(user)
    found += [call.typed, call.fallbacks, native, list(call.extra)]
    try:
        written = orjson.dumps(found, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return None
    return hashlib.sha256(VERSION + written).hexdigest()


def sampled(call: ChatCall, fixed: bool = False) -> bool:
    """Whether the answer is drawn at random: a temperature above 0 (the model's default where
    none is given) without a seed. Where the model's sampling is `fixed` (it takes no sampling
    parameter, or the client's API version sends none), a request that names none asks for the
    only answer its clients can ask for: it is not counted as sampled."""
    if fixed and call.temperature is None and not any(call.options.get(name) is not None for name in _SAMPLING):
        return False
    return (call.temperature is None or call.temperature > 0) and call.options.get("seed") is None


_SAMPLING = ("top_p", "top_k")


def _kept(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if name not in IGNORED}
