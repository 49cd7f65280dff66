"""The pool of model servers as configured: OPENAI_BASE_URL's list (with OPENAI_API_KEY's keys)
or UPSTREAMS_FILE's entries, each checked field by field; errors name the entry and the field,
never a key."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from typing import Any

import yaml

from .controls import CONTROLS
from .prices import Price, price_table
from .rules import Rules, described_table
from .values import MAX_UPSTREAMS, ConfigError, file, url

MAX_WEIGHT = 1000.0
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_ENTRY_FIELDS = tuple(
    (
        "name url kind api_key api_key_env models weight continuation concurrency fallback_on_refusal allow_fields "
        "anthropic_version"
    ).split()
)
# The API a server speaks: OpenAI's chat completions, or Anthropic's Messages API (Anthropic's
# own, vLLM, llama.cpp's server, SGLang).
KINDS = ("openai", "anthropic")
MAX_CONCURRENCY = 100_000
# How a server continues a reply another cut: the delivered text as a trailing assistant message
# it completes (`prefill`: vLLM, llama.cpp's llama-server), that message and a request to go on
# (`message`: any chat server; the overlap is dropped), or not at all (`none`).
CONTINUATIONS = ("prefill", "message", "none")
# The Messages API versions ChatWait translates to, newest last (the default): 2026-10-21 refuses
# every sampling parameter, 2023-06-01 takes them.
ANTHROPIC_VERSIONS = ("2023-06-01", "2026-10-21")
SAMPLING_REFUSED_FROM = "2026-10-21"  # the Messages API version that refuses temperature, top_p and top_k


@dataclasses.dataclass(frozen=True)
class UpstreamServer:
    """One model server of the pool: its name (metrics, logs, /ready), base URL (None: OpenAI's),
    key, the models it serves (empty: every allowed model), its routing weight, how it
    continues a reply cut mid-answer (`CONTINUATIONS`), the API it speaks (`KINDS`), and whether
    its models' refusals go to their fallback models (`fallback_on_refusal`)."""

    name: str
    url: str | None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    models: tuple[str, ...] = ()
    weight: float = 1.0
    continuation: str = "message"
    concurrency: int | None = None  # requests it takes at once (None: no limit; 1 is learned from a preemption)
    kind: str = "openai"  # the API it speaks (`KINDS`)
    url_setting: str = "OPENAI_BASE_URL"  # where it is configured, as /ready names it
    key_setting: str = "OPENAI_API_KEY"
    fallback_on_refusal: bool = False  # a refusal (a model's, or a content filter's) asks the fallback model
    allow_fields: frozenset[str] = frozenset()  # server-side controls it is sent (`controls.CONTROLS`)
    anthropic_version: str = ANTHROPIC_VERSIONS[-1]  # what a translation to its Messages API is sent as

    def serves(self, model: str) -> bool:
        """Whether requests for `model` may go to this server."""
        return not self.models or model in self.models


def server_name(base_url: str | None) -> str:
    """A server's default name: the host (and port) of its URL."""
    if base_url is None:
        return "api.openai.com"
    parts = urllib.parse.urlsplit(base_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def pool_from_list(base_urls: str | None, api_keys: str | None) -> tuple[UpstreamServer, ...]:
    """The servers of OPENAI_BASE_URL (one, or a list serving the same models) with OPENAI_API_KEY
    (one key for all, or a list in the same order)."""
    listed: list[str | None] = list(base_urls.split(",")) if base_urls else [None]
    keys = [key.strip() for key in api_keys.split(",")] if api_keys else [None]
    if len(keys) not in (1, len(listed)):
        raise ConfigError(
            f"OPENAI_API_KEY holds {len(keys)} keys for {len(listed)} servers in OPENAI_BASE_URL: "
            "give one key for all of them, or one per server in the same order."
        )
    names = _unique_names([server_name(address) for address in listed])
    keys = keys * len(listed) if len(keys) == 1 else keys
    return tuple(
        UpstreamServer(name, address, key, url_setting=_item("OPENAI_BASE_URL", n, len(listed)))
        for n, (name, address, key) in enumerate(zip(names, listed, keys, strict=True), start=1)
    )


def _item(setting: str, number: int, count: int) -> str:
    """The setting, and which of its comma-separated items, where it has several."""
    return setting if count == 1 else f"{setting} (item {number})"


def _unique_names(names: list[str]) -> list[str]:
    """Names made unique by a #2, #3 suffix (two servers on one host)."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


@dataclasses.dataclass(frozen=True)
class UpstreamsFile:
    """What UPSTREAMS_FILE holds: the servers, and each model's fallback models, in order (when
    its servers fail; `context_window`: when the input is too long for it)."""

    servers: tuple[UpstreamServer, ...]
    fallbacks: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    context_window: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    prices: Mapping[str, Price] = dataclasses.field(default_factory=dict)  # by model
    models: Mapping[str, Rules] = dataclasses.field(default_factory=dict)  # each described model's rules


MAX_FALLBACKS = 5  # fallback models of one model (each costs a request's attempts)
_FALLBACK_TABLES = ("fallbacks", "context_window_fallbacks")
_TOML_AT = re.compile(r"\(at line (?P<line>\d+), column (?P<column>\d+)\)")  # tomllib's words
_TABLES = ("upstreams", *_FALLBACK_TABLES, "prices", "models")  # `upstream` too: TOML's [[upstream]]


def _toml_position(error: BaseException) -> str:
    """Where a TOML file went wrong and what the parser found there ("line 3, column 9: Invalid
    value"), from its message; "" for another error."""
    if not isinstance(error, tomllib.TOMLDecodeError):
        return ""
    found = _TOML_AT.search(str(error))
    if found is None:
        return ""
    said = str(error)[: found.start()].strip()[:80]
    return f"line {found['line']}, column {found['column']}" + (f": {said}" if said else "")


def upstreams_file(name: str, raw: str, environ: Mapping[str, str] | None = None) -> UpstreamsFile:
    """The servers listed in a TOML (`[[upstream]]` tables) or YAML (`upstreams:` list) file, its
    `fallbacks` and `context_window_fallbacks` tables (model -> models), its `prices` and its
    `models` (each model's rules, over `rules.TABLE`'s)."""
    path = file("a TOML or YAML file listing the model servers")(name, raw)
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        where = getattr(error, "problem_mark", None) or _toml_position(error)
        raise ConfigError(
            f"{name}={raw.strip()!r} cannot be read as {'YAML' if path.suffix in ('.yaml', '.yml') else 'TOML'}"
            f"{f' ({where})' if where else ''}: check the file (a .yaml or .yml file is YAML, any other TOML)."
        ) from None
    entries = document.get("upstream", document.get("upstreams")) if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{name}: the file lists no server: write [[upstream]] tables (TOML) or an upstreams: list.")
    if len(entries) > MAX_UPSTREAMS:
        raise ConfigError(f"{name}: the file lists {len(entries)} servers; at most {MAX_UPSTREAMS}.")
    servers = [
        _entry(name, number, entry, os.environ if environ is None else environ)
        for number, entry in enumerate(entries, start=1)
    ]
    names = [server.name for server in servers]
    for server in servers:
        if names.count(server.name) > 1:
            raise ConfigError(f"{name}: two servers are named {server.name!r}: give each entry its own name.")
    for field in document:
        if field not in ("upstream", *_TABLES):
            raise ConfigError(f"{name}: {field!r} is not a table of the file: use {', '.join(_TABLES)}.")
    fallbacks, context_window = (_fallbacks(f"{name}: {table}", document.get(table, {})) for table in _FALLBACK_TABLES)
    prices = price_table(f"{name}: prices", document.get("prices", {}))
    described = described_table(f"{name}: models", document.get("models", {}))
    return UpstreamsFile(tuple(servers), fallbacks, context_window, prices, described)


def _fallbacks(where: str, table: Any) -> dict[str, tuple[str, ...]]:
    """A fallback table: each model to the other models tried after it, in order."""
    shape = f'{where} must map a model to a list of other models, e.g. {{"gpt-a": ["gpt-b", "local-c"]}}.'
    if not isinstance(table, dict):
        raise ConfigError(shape)
    found = {}
    for model, others in table.items():
        if not isinstance(others, list) or not all(isinstance(m, str) and m.strip() for m in others):
            raise ConfigError(shape)
        others = tuple(dict.fromkeys(m.strip() for m in others if m.strip() != model))
        if len(others) > MAX_FALLBACKS:
            raise ConfigError(f"{where}: {model!r} has {len(others)} fallbacks; at most {MAX_FALLBACKS}.")
        found[str(model)] = others
    return found


def _entry(name: str, number: int, entry: Any, environ: Mapping[str, str]) -> UpstreamServer:
    """One server entry, checked field by field; errors name the entry and field, never a key."""
    where = f"{name}: entry {number}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table of fields: give url (and optionally name, api_key, models, weight).")
    for field in entry:
        if field not in _ENTRY_FIELDS:
            raise ConfigError(f"{where}: {field!r} is not a field: use {', '.join(_ENTRY_FIELDS)}.")
    if not isinstance(entry.get("url"), str):
        raise ConfigError(f"{where}: url is missing: give the server's base URL, e.g. http://10.0.0.5:8000/v1.")
    address = url(f"{where}: url", entry["url"])
    label = entry.get("name", server_name(address))
    if not isinstance(label, str) or not _SERVER_NAME.fullmatch(label):
        raise ConfigError(f"{where}: name must be 1 to 64 characters from A-Z a-z 0-9 . _ : - (e.g. vllm-1).")
    named = f"{where} ({label})"
    continuation = entry.get("continuation", "message")
    if continuation not in CONTINUATIONS:
        raise ConfigError(f"{named}: continuation must be one of {', '.join(CONTINUATIONS)} (default message).")
    kind = entry.get("kind", "openai")
    if kind not in KINDS:
        raise ConfigError(f"{named}: kind must be one of {', '.join(KINDS)} (default openai).")
    refusals = entry.get("fallback_on_refusal", False)
    if type(refusals) is not bool:
        raise ConfigError(f"{named}: fallback_on_refusal must be true or false (default false).")
    return UpstreamServer(
        label,
        address,
        _entry_key(named, entry, environ),
        _entry_models(named, entry),
        _entry_weight(named, entry),
        continuation,
        _concurrency(named, entry),
        kind,
        f"the url of {name} entry {number} ({label})",
        _key_field(f"{name} entry {number} ({label})", entry),
        refusals,
        _allowed(named, entry),
        _version(named, entry),
    )


def _version(where: str, entry: dict[str, Any]) -> str:
    version = entry.get("anthropic_version", ANTHROPIC_VERSIONS[-1])
    if version not in ANTHROPIC_VERSIONS:
        raise ConfigError(
            f"{where}: anthropic_version must be one of {', '.join(ANTHROPIC_VERSIONS)} (default the newest)."
        )
    return version


def _concurrency(where: str, entry: dict[str, Any]) -> int | None:
    concurrency = entry.get("concurrency")
    if concurrency is not None and (type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY):
        raise ConfigError(f"{where}: concurrency must be a whole number from 1 to {MAX_CONCURRENCY} (unset: no limit).")
    return concurrency


def _allowed(where: str, entry: dict[str, Any]) -> frozenset[str]:
    """The server-side controls a server is sent as a client wrote them (still held to the reservation)."""
    listed = entry.get("allow_fields", [])
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise ConfigError(f'{where}: allow_fields must be a list of field names, e.g. ["grammar"].')
    passed = [name for name in listed if name not in CONTROLS]
    if passed:
        raise ConfigError(
            f"{where}: allow_fields names {', '.join(map(repr, passed))}, which ChatWait never holds back: "
            "list only server-side controls (docs/reference.md names them)."
        )
    return frozenset(listed)


def _key_field(where: str, entry: dict[str, Any]) -> str:
    """Where an entry's key comes from, as an operator would look for it."""
    if "api_key_env" in entry:
        return f"{entry['api_key_env']} (the api_key_env of {where})"
    return f"the api_key of {where}"


def _entry_key(where: str, entry: dict[str, Any], environ: Mapping[str, str]) -> str | None:
    if "api_key" in entry and "api_key_env" in entry:
        raise ConfigError(f"{where}: give api_key or api_key_env, not both.")
    if "api_key_env" in entry:
        variable = entry["api_key_env"]
        if not isinstance(variable, str) or not environ.get(variable, "").strip():
            raise ConfigError(f"{where}: api_key_env names {variable!r}, which is not set: set it or fix the name.")
        return environ[variable].strip()
    key = entry.get("api_key")
    if key is not None and (not isinstance(key, str) or not key.strip() or "," in key):
        raise ConfigError(f"{where}: api_key must be one key as text (or use api_key_env).")
    return key.strip() if key else None


def _entry_models(where: str, entry: dict[str, Any]) -> tuple[str, ...]:
    listed = entry.get("models", [])
    if not isinstance(listed, list) or not all(isinstance(m, str) and m.strip() for m in listed):
        raise ConfigError(f'{where}: models must be a list of model names, e.g. ["llama-3.1-8b"].')
    return tuple(dict.fromkeys(m.strip() for m in listed))


def _entry_weight(where: str, entry: dict[str, Any]) -> float:
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= MAX_WEIGHT:
        raise ConfigError(f"{where}: weight must be a number above 0 and at most {MAX_WEIGHT:g} (default 1).")
    return float(weight)
