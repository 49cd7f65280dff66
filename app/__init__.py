"""ChatWait: a wait and resumable streaming chat API in front of a large language model.

Importing this package stays light (no Flask, no HTTP client, no ssl) so that
gunicorn.conf.py can share `app.logs` in the master process before gevent patches the
worker; `create_app` imports the rest when it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings (env plus `overrides`, same names), logging, services, routes.

    Raises ConfigError on a bad setting, and RuntimeError when gevent has not patched the
    standard library first (unless TESTING, where the Flask test client drives it).
    """
    from .factory import build_app

    return build_app(overrides)
