"""Client keys as configured: CHATWAIT_API_KEYS (a comma list) and CHATWAIT_API_KEYS_FILE, whose
lines are `KEY [name=NAME] [max_streams=N] [rpm=N] [tpm=N] [max_sockets=N] [budget_day=USD]
[budget_month=USD] [pays=generated|delivered] [cache=on|off] [cache_unsampled=on|off] [user_max_streams=N] [user_rpm=N]
[user_tpm=N] [user_budget_day=USD] [user_budget_month=USD]`. A key's name is what logs and metrics show (a key
never appears there); a limit left out takes KEY_MAX_STREAMS, KEY_REQUESTS_PER_MINUTE,
KEY_TOKENS_PER_MINUTE or KEY_MAX_SOCKETS (unset: unlimited); a budget left out is none; `pays`
says whether the key is charged for the tokens generated for it (the default) or for those that
reached its clients; `cache` switches the response cache on or off for the key alone (left out:
RESPONSE_CACHE decides), `cache_unsampled` whether a request naming no sampling is replayed (left
out: RESPONSE_CACHE_UNSAMPLED decides). The `user_` fields hold each end user of the key (`EndUserLimits`) on top of
the key's own. Errors name the variable, the line and the field, never the key."""

from __future__ import annotations

import dataclasses
import hashlib
import re

from .values import ConfigError, file

MIN_KEY_CHARS = 16
MAX_KEY_CHARS = 256
MAX_KEYS = 100  # each key is searched for in every log line, each name is a metric label
MAX_LIMIT = 1_000_000_000
_CLIENT_KEY = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # what an HTTP Bearer token may hold (RFC 6750)
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # a key's name
_NAME = re.compile(NAME)
_FIELD_WORD = re.compile(r"[a-z_]{1,20}")
LIMIT_FIELDS = ("max_streams", "rpm", "tpm", "max_sockets")
BUDGET_FIELDS = ("budget_day", "budget_month")  # USD a key may spend per UTC day and month
USER_FIELDS = ("user_max_streams", "user_rpm", "user_tpm", "user_budget_day", "user_budget_month")
MAX_BUDGET = 1_000_000.0  # USD: counted in billionths, exact in Redis's Lua numbers below 2**53
PAYS = ("generated", "delivered")


@dataclasses.dataclass(frozen=True)
class EndUserLimits:
    """The limits each end user of a key is held to, on top of the key's own (None: none)."""

    max_streams: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_day: float | None = None  # USD per UTC day
    budget_month: float | None = None  # USD per UTC month

    @property
    def budgeted(self) -> bool:
        """Whether it has a budget in money."""
        return self.budget_day is not None or self.budget_month is not None


@dataclasses.dataclass(frozen=True)
class ClientKey:
    """A key clients may present, the name it goes by, and its own limits (None: the defaults)."""

    key: str = dataclasses.field(repr=False)
    name: str
    max_streams: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_sockets: int | None = None  # Responses WebSockets open at once
    budget_day: float | None = None  # USD per UTC day
    budget_month: float | None = None  # USD per UTC month
    pays: str = "generated"  # or delivered: its output charged as it reaches its clients
    users: EndUserLimits | None = None  # what each of its end users is held to (None: nothing)
    models: tuple[str, ...] = ()  # the models it may ask for (none: every allowed model)
    cache: bool | None = None  # its answers kept and replayed (`response_cache`; None: RESPONSE_CACHE says)
    # A request naming no sampling replayed as its model's answer (None: RESPONSE_CACHE_UNSAMPLED says).
    cache_unsampled: bool | None = None

    def with_defaults(self, *defaults: int | None) -> ClientKey:
        """This key with each limit it leaves out taken from the defaults (in LIMIT_FIELDS' order)."""
        found = {field: getattr(self, field) for field in LIMIT_FIELDS}
        taken = {field: default for field, default in zip(LIMIT_FIELDS, defaults, strict=True) if found[field] is None}
        return dataclasses.replace(self, **taken)

    @property
    def limited(self) -> bool:
        """Whether any limit applies to its requests and generations, its own or its end users'
        (max_sockets, which counts its WebSockets alone, aside)."""
        limits = (self.max_streams, self.rpm, self.tpm, self.budget_day, self.budget_month, self.users)
        return any(limit is not None for limit in limits)

    @property
    def pays_delivered(self) -> bool:
        """Whether its output is charged as it reaches its clients rather than as it is generated."""
        return self.pays == "delivered"

    @property
    def budgeted(self) -> bool:
        """Whether it has a budget in money."""
        return self.budget_day is not None or self.budget_month is not None


def default_name(key: str) -> str:
    """The name of a key given without one: `key-` and the start of its SHA-256 (stable, and no
    more of the key than its digest already shows)."""
    return "key-" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:8]


def client_keys(name: str, raw: str) -> tuple[ClientKey, ...]:
    """Comma-separated client keys (CHATWAIT_API_KEYS): default names, default limits."""
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    _check_count(name, len(keys))
    for number, key in enumerate(keys, start=1):
        _check_key(f"{name}: key number {number}", key)
    return tuple(ClientKey(key, default_name(key)) for key in dict.fromkeys(keys))


def admin_keys(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated admin keys (ADMIN_API_KEY): what opens /v1/admin/, and nothing else."""
    found = [key.strip() for key in raw.split(",") if key.strip()]
    for number, key in enumerate(found, start=1):
        _check_key(f"{name}: key number {number}", key)
    if not found:
        raise ConfigError(f"{name} holds no key: give one (e.g. `openssl rand -hex 24`), or leave it unset.")
    return tuple(dict.fromkeys(found))


def client_key_file(name: str, raw: str) -> tuple[ClientKey, ...]:
    """The keys in a file, one per line with its name and limits; blank lines and lines starting
    with # are skipped."""
    path = file("a file of client keys, one per line")(name, raw)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{name}={raw.strip()!r} cannot be read as UTF-8 text: check the file.") from None
    found = [
        _line(f"{name} line {number}", line)
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    _check_count(name, len(found))
    return unique(name, found)


def unique(name: str, keys: list[ClientKey]) -> tuple[ClientKey, ...]:
    """`keys` without repeats: the same key twice, or two keys under one name, is an error."""
    seen_keys: set[str] = set()
    seen_names: set[str] = set()
    for entry in keys:
        if entry.key in seen_keys:
            raise ConfigError(f"{name}: the key named {entry.name!r} is listed twice: keep one line.")
        if entry.name in seen_names:
            raise ConfigError(f"{name}: two keys are named {entry.name!r}: give each its own name.")
        seen_keys.add(entry.key)
        seen_names.add(entry.name)
    return tuple(keys)


def _line(where: str, line: str) -> ClientKey:
    """One line of the key file: the key, then `field=value` words."""
    key, *words = line.split()
    _check_key(where, key)
    fields: dict[str, str] = {}
    for word in words:
        field, equals, value = word.partition("=")
        if not equals or field not in ("name", "pays", *_SWITCHES, *LIMIT_FIELDS, *BUDGET_FIELDS, *USER_FIELDS):
            shown = repr(field) if equals and _FIELD_WORD.fullmatch(field) else "a word"  # never a key
            raise ConfigError(
                f"{where}: {shown} is not a field: use name=, max_streams=, rpm=, tpm=, max_sockets=, "
                "budget_day=, budget_month=, pays=, cache=, cache_unsampled=, user_max_streams=, user_rpm=, user_tpm=, "
                "user_budget_day= or user_budget_month=."
            )
        if field in fields:
            raise ConfigError(f"{where}: {field} is given twice.")
        fields[field] = value
    named = fields.pop("name", None)
    if named is not None and not _NAME.fullmatch(named):
        raise ConfigError(f"{where}: name must be 1 to 64 characters from A-Z a-z 0-9 . _ - (not starting with . _ -).")
    pays = fields.pop("pays", PAYS[0])
    if pays not in PAYS:
        raise ConfigError(f"{where}: pays={pays[:20]!r} is not valid: use pays=generated or pays=delivered.")
    switched = {name: _switch(where, name, fields.pop(name, None)) for name in _SWITCHES}
    limits: dict[str, float | int] = {
        field: (_budget if field.endswith(BUDGET_FIELDS) else _limit)(where, field, value)
        for field, value in fields.items()
    }
    users = {field.removeprefix("user_"): limits.pop(field) for field in USER_FIELDS if field in limits}
    found = EndUserLimits(**users) if users else None  # type: ignore[arg-type]
    return ClientKey(key, named or default_name(key), pays=pays, users=found, **switched, **limits)  # type: ignore[arg-type]


_SWITCHES = ("cache", "cache_unsampled")  # on or off (left out: the service's setting)


def _switch(where: str, field: str, value: str | None) -> bool | None:
    if value not in (None, "on", "off"):
        raise ConfigError(f"{where}: {field}={value[:20]!r} is not valid: use {field}=on or {field}=off.")
    return None if value is None else value == "on"


def _limit(where: str, field: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise ConfigError(f"{where}: {field}={value[:20]!r} is not valid: use a whole number from 1 to {MAX_LIMIT}.")
    return int(value)


def _budget(where: str, field: str, value: str) -> float:
    """A budget in USD: a plain decimal number such as 5 or 0.25, above 0."""
    if not re.fullmatch(r"[0-9]{1,7}(\.[0-9]{1,9})?", value) or not 0 < float(value) <= MAX_BUDGET:
        raise ConfigError(
            f"{where}: {field}={value[:20]!r} is not valid: use USD as a number above 0 and at most "
            f"{MAX_BUDGET:,.0f} (e.g. {field}=25 or {field}=0.50)."
        )
    return float(value)


def _check_key(where: str, key: str) -> None:
    if not (MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS and _CLIENT_KEY.fullmatch(key)):
        raise ConfigError(
            f"{where} is not valid: use {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters from "
            "A-Z a-z 0-9 - . _ ~ + / (e.g. `openssl rand -hex 24`)."
        )


def _check_count(name: str, count: int) -> None:
    if not count:
        raise ConfigError(f"{name} holds no key: give at least one, or leave it unset to keep the API open.")
    if count > MAX_KEYS:
        raise ConfigError(f"{name} holds {count} keys; at most {MAX_KEYS}.")


def digest(key: str) -> str:
    """What is kept of a client key, and what a stream records of the key that started it: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
