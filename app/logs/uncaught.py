"""Errors nobody caught, as JSON lines: a greenlet's crash, a thread's, the process's last.

By default gevent's hub, threads and the interpreter print these as raw tracebacks on stderr,
outside the JSON log and its redaction: a log reader would meet a line that is not JSON.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any

log = logging.getLogger("chatwait")


def route_uncaught_errors() -> None:
    """Send the current gevent hub's, threads' and the interpreter's uncaught errors to the log."""
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_error
    sys.unraisablehook = _log_unraisable
    if "gevent" in sys.modules:
        _route_hub_errors()


def _route_hub_errors() -> None:
    """gevent's documented override: a `handle_error` set on the hub instance. The hub's own
    handling (a system error raised in the main greenlet) still runs, with its printing off."""
    import gevent
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        return  # the master: it must not make a hub before it forks
    hub = gevent.get_hub()
    if getattr(hub, "_chatwait_routed", False):
        return
    handle = hub.handle_error
    not_error = hub.NOT_ERROR

    def handle_error(context: Any, kind: Any, value: Any, tb: Any) -> None:
        error_type = type(value) if isinstance(value, BaseException) else kind
        if isinstance(error_type, type) and not issubclass(error_type, not_error):
            _log("greenlet_failed", error_type, value, tb, type(context).__name__)
        handle(context, kind, value, tb)

    hub.exception_stream = None
    hub.handle_error = handle_error
    hub._chatwait_routed = True


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    _log("uncaught_error", kind, value, tb, "main")
    for handler in logging.getLogger().handlers:
        handler.flush()  # the process ends next


def _log_thread_error(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        _log("thread_failed", args.exc_type, args.exc_value, args.exc_traceback, "thread")


def _log_unraisable(args: Any) -> None:
    _log("unraisable_error", args.exc_type, args.exc_value, args.exc_traceback, "unraisable")


def _log(event: str, kind: Any, value: Any, tb: Any, context: str) -> None:
    """One ERROR line with the traceback; never raises (it runs where nothing catches)."""
    try:
        exc_info = (kind, value, tb) if isinstance(value, BaseException) else None
        fields = {"error_type": getattr(kind, "__name__", "unknown"), "context": context}
        log.error(event, exc_info=exc_info, extra=fields)
    except Exception:  # the last resort: the log itself failed
        pass
