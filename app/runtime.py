"""The gevent precondition: the standard library must be patched before the app is built."""

from __future__ import annotations

from gevent import monkey

REQUIRED_PATCHES = ("socket", "ssl", "threading", "time", "select")


def require_gevent_patched() -> None:
    """Refuse to run when gevent's monkey-patching did not happen first.

    Unpatched, one blocking upstream read would freeze every stream of the worker.
    """
    missing = [name for name in REQUIRED_PATCHES if not monkey.is_module_patched(name)]
    if missing:
        raise RuntimeError(
            "gevent has not patched " + ", ".join(missing) + ": start ChatWait with "
            "`gunicorn -c gunicorn.conf.py wsgi:app` (wsgi.py patches first), not with an unpatched server."
        )
