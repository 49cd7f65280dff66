"""gunicorn settings for ChatWait; every one can be overridden by the environment variable named.

Start with `gunicorn -c gunicorn.conf.py wsgi:app` (scripts/run does). This file runs in the
gunicorn master, before gevent patches the worker: it imports nothing heavier than app.logs.
"""

import os

from app.config import ConfigError, load_settings
from app.logs import logging_config

# Validate the whole configuration once in the master: a bad value stops start-up with its message.
try:
    _settings = load_settings()
except ConfigError as _error:
    raise SystemExit(f"ChatWait configuration error: {_error}") from None


def _int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < minimum:
        raise SystemExit(f"{name}={raw!r} is not valid: use a whole number of at least {minimum}.")
    return int(raw)


_port = _int("PORT", 8000, 1)
if _port > 65535:
    raise SystemExit(f"PORT={_port} is not valid: use 1 to 65535.")

# Where to listen: BIND (host:port) wins over PORT; 0.0.0.0 so a container is reachable.
bind = os.environ.get("BIND", "").strip() or f"0.0.0.0:{_port}"

# gunicorn's gevent worker in its pywsgi form (app/worker.py: lighter per request, with a
# cheaper write to the client): one process serves thousands of concurrent streams as greenlets.
worker_class = "app.worker.ChatWaitWorker"

# One worker by default: the stream store lives in the worker's memory, so every request for a
# stream must reach the process that holds it. Raise only behind sticky routing (or, later, Redis).
workers = _int("WEB_CONCURRENCY", 1, 1)

# Concurrent connections per worker (each open stream holds one).
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 4000, 2000)

# No preload: gevent must patch in the worker before the app (and ssl, httpx) are imported.
preload_app = False

# For gevent workers this is a heartbeat, not a request limit: long streams are fine.
timeout = _int("GUNICORN_TIMEOUT", 30, 1)

# On restart or deploy, open streams get this long before they are cut (clients then resume).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30, 0)

# Seconds an idle keep-alive connection stays open between requests.
keepalive = _int("GUNICORN_KEEPALIVE", 5, 0)

# The same JSON logging with redaction as the app, for gunicorn's own lines too.
logconfig_dict = logging_config(_settings.log_level)

# The app logs each request itself (request_received/request_completed); no plain-text access log,
# and a logger class that does not build access lines nobody writes.
accesslog = None
logger_class = "app.logs.GunicornLogger"

# Log gunicorn's errors through the JSON logging above (stderr would bypass it).
errorlog = "-"

# gunicorn's runtime control socket (one path per user) is not used; several instances on
# one host would fight over it. Set GUNICORN_CONTROL_SOCKET=1 to enable it.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip() != "1"
