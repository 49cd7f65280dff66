"""gunicorn settings for ChatWait, read through app/config.py (the README's configuration table).

Start with `gunicorn -c gunicorn.conf.py wsgi:app` (scripts/run does). This file runs in the
gunicorn master (again on each SIGHUP), before gevent patches the worker: it imports nothing
heavier than app.config, app.logs and plain-socket helpers.
"""

import logging
import os
import shutil
import tempfile

from app.config import ConfigError
from app.logs import logging_config, route_uncaught_errors
from app.metrics import prepare_multiprocess_dir, remove_multiprocess_dir
from app.server.listen import address_in_use
from app.server.master import master_settings

# Validate the whole configuration in the master: at start-up a bad value stops it with its
# message. On a reload (SIGHUP) a bad value is logged and the running configuration stays; the
# new workers inherit it (app/server/master.py).
try:
    _settings, _refused, _reload = master_settings()
except ConfigError as _error:
    raise SystemExit(f"ChatWait configuration error: {_error}") from None
if _refused is not None:
    logging.getLogger("chatwait.config").error(
        "config_reload_refused",
        extra={"detail": str(_refused), "action": "Fix the setting, then send SIGHUP again; the running one stays."},
    )

# /metrics sums every worker's values (prometheus_client's multiprocess mode): the workers write
# them to files in PROMETHEUS_MULTIPROC_DIR (emptied at start), or in a temporary folder removed
# when the server stops.
_metrics_enabled = _settings.operations.metrics_enabled
_metrics_dir, _metrics_dir_created = prepare_multiprocess_dir() if _metrics_enabled else (None, False)

# Where to listen: BIND (host:port) wins over PORT; 0.0.0.0 so a container is reachable.
bind = _settings.bind_address
if not _reload and address_in_use(bind):
    raise SystemExit(
        f"ChatWait cannot listen on {bind}: another process uses that port. Set PORT (or BIND) to a "
        "free port, or stop the other process."
    )

# gunicorn's gevent worker with gunicorn's own HTTP parser, under read and write deadlines
# (app/server/worker.py): one process serves thousands of concurrent streams as greenlets.
worker_class = "app.server.worker.ChatWaitWorker"

# With the memory store, one worker: a stream lives in its worker's memory, so every request for
# it must reach that process. With STREAM_STORE=redis, one per CPU core: any worker serves any stream.
workers = _settings.workers

# Concurrent connections per worker (each open stream holds one).
worker_connections = _settings.server.gunicorn_worker_connections

# No preload: gevent must patch in the worker before the app (and ssl, httpx) are imported.
preload_app = False

# For gevent workers this is a heartbeat, not a request limit: long streams are fine.
timeout = _settings.server.gunicorn_timeout

# On SIGTERM or SIGHUP, running generations get this long to finish; those still running then
# end with a terminal service_restarting error (app/server/shutdown.py).
graceful_timeout = _settings.server.gunicorn_graceful_timeout

# Seconds an idle keep-alive connection stays open between requests.
keepalive = _settings.server.gunicorn_keepalive

# gunicorn's pure-Python parser, even where its C parser (gunicorn-h1c) is installed: that one
# accepts bare LF line ends, so a request hidden behind them gets answered (docs/performance.md).
http_parser = "python"

# What one request head may hold: the request line, the number of headers, each header's size.
# Over them the request is refused (414 or 431, JSON); the whole head is bounded by
# REQUEST_MAX_HEAD_BYTES (app/server/head_limit.py).
limit_request_line = _settings.server.gunicorn_limit_request_line
limit_request_fields = _settings.server.gunicorn_limit_request_fields
limit_request_field_size = _settings.server.gunicorn_limit_request_field_size

# The same JSON logging with redaction as the app, for gunicorn's own lines too.
logconfig_dict = logging_config(_settings.operations.log_level, _settings.secrets)
route_uncaught_errors()  # the master's too: no raw traceback on stderr

# The app logs each request itself (request_received/request_completed); no plain-text access log,
# and a logger class that does not build access lines nobody writes.
accesslog = None
logger_class = "app.server.logger.GunicornLogger"

# Log gunicorn's errors through the JSON logging above (stderr would bypass it).
errorlog = "-"

# gunicorn's runtime control socket (one path per user) is off: several instances on one host
# would fight over it. GUNICORN_CONTROL_SOCKET=true turns it on.
control_socket_disable = not _settings.server.gunicorn_control_socket


def worker_exit(server, worker):
    """When a worker has stopped serving: stop its live generations and close upstream connections."""
    from app import close_app

    app = getattr(worker, "wsgi", None)  # None when the worker failed before loading the app
    if app is not None:
        close_app(app)


# A private folder through which a draining worker hands its key counters to the next (a reload
# on the memory store: app/limits/reload.py, whose VARIABLE this is); made once, kept across reloads.
RELOAD_VARIABLE = "CHATWAIT_RELOAD_DIR"
if _settings.streams.stream_store == "memory" and not os.environ.get(RELOAD_VARIABLE):
    os.environ[RELOAD_VARIABLE] = tempfile.mkdtemp(prefix="chatwait-reload-")
# The workers of a first start count the budgets' spend from the spend report (DATA_DIR); those
# of a reload from what the draining workers hand over (app/limits/reload.py's RELOADED).
if _reload:
    os.environ["CHATWAIT_RELOADED"] = "1"


def on_exit(server):
    """The server stops: remove the metrics folder it created, and the reload folder."""
    if _metrics_dir is not None and _metrics_dir_created:
        remove_multiprocess_dir(_metrics_dir)
    if os.environ.get(RELOAD_VARIABLE):
        shutil.rmtree(os.environ[RELOAD_VARIABLE], ignore_errors=True)
