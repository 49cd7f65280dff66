"""Parsers of configuration values: each turns an environment variable's raw text into a typed
value, or raises ConfigError naming the variable and saying what to put instead."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

MIN_KEY_CHARS = 16
MAX_KEY_CHARS = 256
MAX_KEYS = 100  # each key is searched for in every log line (docs/performance.md)
_CLIENT_KEY = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # what an HTTP Bearer token may hold (RFC 6750)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message says which and how to fix it."""


def text(name: str, raw: str) -> str:
    """Any text, trimmed."""
    return raw.strip()


def _ranged(
    convert: Callable[[str], Any], minimum: float, maximum: float, kind: str, example: str, span: str
) -> Callable[[str, str], Any]:
    """A parser of values `convert` reads, from `minimum` to `maximum` (nan is out of range);
    `kind` and `example` say what a value should look like, `span` the range in words."""

    def parse(name: str, raw: str) -> Any:
        try:
            value = convert(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not {kind}: use e.g. {name}={example}.") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name}={raw.strip()} is out of range: use {span}.")
        return value

    return parse


def integer(minimum: int, maximum: int) -> Callable[[str, str], int]:
    """A parser of whole numbers from `minimum` to `maximum`."""
    return _ranged(int, minimum, maximum, "a whole number", str(minimum), f"a value from {minimum} to {maximum}")


def number(minimum: float, maximum: float) -> Callable[[str, str], float]:
    """A parser of numbers from `minimum` to `maximum`."""
    return _ranged(float, minimum, maximum, "a number", f"{minimum:g}", f"{minimum:g} to {maximum:g}")


def seconds(minimum: float, maximum: float) -> Callable[[str, str], float]:
    """A parser of durations in seconds from `minimum` to `maximum`."""
    return _ranged(float, minimum, maximum, "a number of seconds", "30", f"{minimum:g} to {maximum:g} seconds")


def port(name: str, raw: str) -> int:
    """A TCP port number."""
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{name}={raw!r} is not valid: use a port number from 1 to 65535.")
    return int(value)




def choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str, str], str]:
    """A parser of one of `options` (compared in lower case, or upper with `upper`)."""

    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in options:
            raise ConfigError(f"{name}={raw!r} is not supported: use one of {', '.join(options)}.")
        return value

    return parse


def url(name: str, raw: str) -> str:
    """An http(s) URL, without its trailing slash."""
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or len(value) < 10 or " " in value:
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL: use e.g. {name}=http://localhost:11434/v1.")
    return value


def urls(name: str, raw: str) -> str:
    """One http(s) URL or a comma-separated list (a pool of servers), each checked; joined by commas."""
    found = [url(name, item) for item in raw.split(",") if item.strip()]
    if not found:
        raise ConfigError(f"{name} lists no URL: use e.g. {name}=http://10.0.0.5:8000/v1,http://10.0.0.6:8000/v1.")
    if len(found) > MAX_UPSTREAMS:
        raise ConfigError(f"{name} lists {len(found)} servers; at most {MAX_UPSTREAMS}.")
    return ",".join(found)


REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")


def redis_url(name: str, raw: str) -> str:
    """A Redis URL: redis://, rediss:// or unix:// (one server), redis+sentinel://host:port,...
    /master[/db] (a primary found through Sentinel), redis+cluster://host:port (a Cluster)."""
    value = raw.strip()
    scheme, separator, rest = value.partition("://")
    if not separator or scheme not in REDIS_SCHEMES or not rest or " " in value:
        raise ConfigError(
            f"{name} is not a Redis URL: use e.g. {name}=redis://localhost:6379/0, "
            "redis+sentinel://sentinel-1:26379,sentinel-2:26379/mymaster or redis+cluster://node-1:6379."
        )
    if "+sentinel" in scheme and "/" not in rest.rpartition("@")[2].strip("/"):
        raise ConfigError(
            f"{name} names Sentinels but no primary: add /NAME, e.g. {name}=redis+sentinel://h:26379/mymaster."
        )
    return value


def host_ports(default_port: int) -> Callable[[str, str], tuple[tuple[str, int], ...]]:
    """A parser of comma-separated host:port pairs (the port defaults to `default_port`)."""

    def parse(name: str, raw: str) -> tuple[tuple[str, int], ...]:
        found = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            host, colon, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
            host, port = (host, port) if colon else (item, str(default_port))
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or " " in host:
                raise ConfigError(
                    f"{name} holds {item!r}: list host:port pairs, e.g. {name}=10.0.0.5:26379,10.0.0.6:26379."
                )
            found.append((host.strip("[]"), int(port)))
        if not found:
            raise ConfigError(f"{name} lists nothing: give host:port pairs, or leave it unset.")
        return tuple(found)

    return parse


_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?")


def origins(name: str, raw: str) -> tuple[str, ...]:
    """Web origins (scheme://host[:port], comma-separated), or `*` for any origin."""
    found = tuple(dict.fromkeys(o.strip().lower().rstrip("/") for o in raw.split(",") if o.strip()))
    if found == ("*",):
        return found
    for origin in found:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"{name} holds {origin!r}, which is not a web origin: list origins such as "
                f"https://app.example.com,http://localhost:3000 (scheme, host, port; no path), or *."
            )
    return found


def models(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of model names, at least one."""
    models = tuple(dict.fromkeys(m.strip() for m in raw.split(",") if m.strip()))
    if not models:
        raise ConfigError(f"{name} lists no model: give a comma-separated list, e.g. {name}=gpt-4o-mini,gpt-4o.")
    return models


def file(what: str) -> Callable[[str, str], Path]:
    """A parser of paths to an existing file (`what` names it in the error)."""

    def parse(name: str, raw: str) -> Path:
        path = Path(raw.strip()).expanduser()
        if not path.is_file():
            raise ConfigError(f"{name}={raw.strip()!r} is not a file: give the path of {what}.")
        return path

    return parse


def client_keys(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated client keys (CHATWAIT_API_KEYS)."""
    return _checked_keys(name, [key.strip() for key in raw.split(",") if key.strip()])


def client_key_file(name: str, raw: str) -> tuple[str, ...]:
    """The keys in a file: one per line; blank lines and lines starting with # are skipped."""
    path = file("a file of client keys, one per line")(name, raw)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{name}={raw.strip()!r} cannot be read as UTF-8 text: check the file.") from None
    return _checked_keys(name, [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")])


def _checked_keys(name: str, keys: list[str]) -> tuple[str, ...]:
    if not keys:
        raise ConfigError(f"{name} holds no key: give at least one, or leave it unset to keep the API open.")
    if len(keys) > MAX_KEYS:
        raise ConfigError(f"{name} holds {len(keys)} keys; at most {MAX_KEYS}.")
    for number, key in enumerate(keys, start=1):
        if not (MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS and _CLIENT_KEY.fullmatch(key)):
            raise ConfigError(
                f"{name}: key number {number} is not valid: use {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters from "
                "A-Z a-z 0-9 - . _ ~ + / (e.g. `openssl rand -hex 24`)."
            )
    return tuple(dict.fromkeys(keys))


def flag(name: str, raw: str) -> bool:
    """A boolean: true/false, yes/no, 1/0."""
    value = raw.strip().lower()
    if value not in ("1", "0", "true", "false", "yes", "no"):
        raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false.")
    return value in ("1", "true", "yes")


MAX_UPSTREAMS = 32  # each server is a label value of the per-server metrics
MAX_WEIGHT = 1000.0
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_ENTRY_FIELDS = ("name", "url", "api_key", "api_key_env", "models", "weight")


@dataclasses.dataclass(frozen=True)
class UpstreamServer:
    """One model server of the pool: its name (metrics, logs, /ready), base URL (None: OpenAI's),
    key, the models it serves (empty: every allowed model) and its routing weight."""

    name: str
    url: str | None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    models: tuple[str, ...] = ()
    weight: float = 1.0

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
    return tuple(UpstreamServer(*server) for server in zip(names, listed, keys, strict=True))


def _unique_names(names: list[str]) -> list[str]:
    """Names made unique by a #2, #3 suffix (two servers on one host)."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def upstreams_file(name: str, raw: str, environ: Mapping[str, str] | None = None) -> tuple[UpstreamServer, ...]:
    """The servers listed in a TOML (`[[upstream]]` tables) or YAML (`upstreams:` list) file."""
    path = file("a TOML or YAML file listing the model servers")(name, raw)
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        where = getattr(error, "problem_mark", None) or ""
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
    return tuple(servers)


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
    return UpstreamServer(
        label, address, _entry_key(named, entry, environ), _entry_models(named, entry), _entry_weight(named, entry)
    )


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
