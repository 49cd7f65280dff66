"""The one logging setup of the process, shared by the app and gunicorn: JSON lines on stdout."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Sequence
from typing import Any

from .context import ContextFilter
from .formatter import RedactingJsonFormatter
from .handler import DeferredStreamHandler
from .uncaught import route_uncaught_errors


def logging_config(level: str = "INFO", secrets: Sequence[str] = ()) -> dict[str, Any]:
    """The dictConfig of the process (also gunicorn's `logconfig_dict`); `secrets` (the configured
    keys) are redacted wherever they appear, whatever they look like."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"json": {"()": RedactingJsonFormatter, "secrets": list(secrets)}},
        "handlers": {
            "stdout": {
                "()": DeferredStreamHandler,
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["context"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            # Their DEBUG lines carry request headers (the API key); keep them at INFO at most.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            "openai": {"level": "WARNING"},
            "websockets": {"level": "WARNING"},  # its DEBUG lines: a socket's headers and messages
        },
    }


def configure_logging(level: str, secrets: Sequence[str] = ()) -> None:
    """Install the JSON logging setup for the whole process, uncaught errors included.

    Records skip the thread, process and caller fields (the logging HOWTO's optimisation):
    none is written, and under gevent asking for the current thread builds a dummy Thread
    object for every new greenlet, while finding the caller walks the stack on every call.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.config.dictConfig(logging_config(level, secrets))
    route_uncaught_errors()
