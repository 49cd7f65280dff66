"""The settings the gunicorn master validated, handed to its workers.

The master validates the environment at start-up and on each reload (SIGHUP); its workers
inherit the result through fork, so a file a setting names (CHATWAIT_API_KEYS_FILE) that turns
bad before a reload cannot reach them, and a reload with a bad setting keeps the running one.
Plain Python: gunicorn.conf.py imports it in the master, before gevent patches anything.
"""

from __future__ import annotations

from typing import NamedTuple

from ..config import ConfigError, Settings, load_settings

_running: Settings | None = None  # what the master validated last


class Validated(NamedTuple):
    """What the master validated: the settings in force, the error of a refused reload, and
    whether this was a reload (the master already runs, and holds its listening socket)."""

    settings: Settings
    refused: ConfigError | None
    reload: bool


def master_settings() -> Validated:
    """Validate the environment in the gunicorn master, at start-up and on each reload (SIGHUP).

    At start-up a bad setting raises ConfigError. On a reload it is returned beside the running
    settings, which stay in force; the new workers get them.
    """
    global _running
    reload = _running is not None
    try:
        settings = load_settings()
    except ConfigError as error:
        if _running is None:
            raise
        return Validated(_running, error, reload)
    _running = settings
    return Validated(settings, None, reload)


def running_settings() -> Settings:
    """The settings of this process: those its gunicorn master validated, else the environment's."""
    return _running if _running is not None else load_settings()
