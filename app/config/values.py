"""Parsers of configuration values: each turns an environment variable's raw text into a typed
value, or raises ConfigError naming the variable and saying what to put instead."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def bound(name: str, raw: str) -> float:
    """A load bound: 0 (off), or how many times the average, from 1 to 100."""
    value = number(0, 100)(name, raw)
    if 0 < value < 1:
        raise ConfigError(f"{name}={raw.strip()} is out of range: use 0 (off) or 1 to 100 (times the average load).")
    return value


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


MAX_UPSTREAMS = 32  # each server is a label value of the per-server metrics


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
    /master[/db] (a primary found through Sentinel), redis+cluster://host:port[,host:port...] (a
    Cluster, found through any node it names)."""
    value = raw.strip()
    scheme, separator, rest = value.partition("://")
    if not separator or scheme not in REDIS_SCHEMES or not rest or " " in value:
        raise ConfigError(
            f"{name} is not a Redis URL: use e.g. {name}=redis://localhost:6379/0, "
            "redis+sentinel://sentinel-1:26379,sentinel-2:26379/mymaster or redis+cluster://node-1:6379,node-2:6379."
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


def percents(name: str, raw: str) -> tuple[int, ...]:
    """Comma-separated whole percents from 1 to 100 (e.g. 50,80,100)."""
    found = [part.strip() for part in raw.split(",") if part.strip()]
    if not found or not all(part.isascii() and part.isdigit() and 1 <= int(part) <= 100 for part in found):
        raise ConfigError(f"{name}={raw.strip()[:40]!r} is not valid: give whole percents from 1 to 100 (50,80,100).")
    return tuple(sorted({int(part) for part in found}))


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


def flag(name: str, raw: str) -> bool:
    """A boolean: true/false, yes/no, 1/0."""
    value = raw.strip().lower()
    if value not in ("1", "0", "true", "false", "yes", "no"):
        raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false.")
    return value in ("1", "true", "yes")
