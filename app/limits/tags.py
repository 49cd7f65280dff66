"""Where each of a key's counters lives in Redis (`shared`): under one hash tag per key, so that
a script call touches one slot (a Cluster's node); a key's end users under the same tag."""

from __future__ import annotations

from ..accounts.payer import Payer

PREFIX = "chatwait:limits"


def key_tag(name: str) -> str:
    """Where the counters of the key named `name` live: one hash tag, one slot."""
    return f"{PREFIX}:{{{name}}}"


def tags(payer: Payer) -> tuple[str, ...]:
    """Whose counters a payer's generation counts in: its key's, and (where the key holds them to
    limits of their own) its end user's, in the key's slot."""
    user = payer.counted_user
    return (key_tag(payer.name),) if user is None else (key_tag(payer.name), user_tag(payer.name, user))


def user_tag(name: str, user: str) -> str:
    """Where the counters of the end user `user` of the key named `name` live (in its slot)."""
    return f"{key_tag(name)}:u:{user}"


def counter_keys(tag: str) -> tuple[str, str, str]:
    """The live generations, requests and tokens of a key (or of its end user) under `tag`."""
    return f"{tag}:live", f"{tag}:requests", f"{tag}:tokens"


def spend_keys(tag: str, periods: tuple[str, ...]) -> list[str]:
    """The spend in a day and a month under `tag` (in the slot of its other counters)."""
    return [f"{tag}:spent:{period}" for period in periods]


def reserved_keys(tag: str, periods: tuple[str, str]) -> list[str]:
    """What generations still running reserve of the spend in a day and a month under `tag`."""
    return [f"{tag}:reserved:{period}" for period in periods]


def taken_key(tag: str, ticket: str) -> str:
    """What a ticket taken over has settled (in the slot of its key's other counters)."""
    return f"{tag}:taken:{ticket}"


def held_key(tag: str, ticket: str) -> str:
    """What a budgeted ticket reserved, until it settles (then `settled`: a late admission of it,
    or a second settlement, does nothing)."""
    return f"{tag}:held:{ticket}"


def sockets_key(name: str) -> str:
    """A key's open WebSockets (in the slot of its other counters)."""
    return f"{key_tag(name)}:sockets"
