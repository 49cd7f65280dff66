"""The steps around a worker process's life, in order, in one place.

1. `wsgi.py` patches the standard library with gevent before anything else is imported.
2. `create_app` refuses to run unpatched (`require_gevent_patched`), sets up logging, builds
   the services and starts the stream store's reaper.
3. `wsgi.py` then freezes what start-up built out of the garbage collector's way
   (`freeze_start_up`).
4. On SIGTERM or SIGHUP the worker drains (`shutdown`): running generations get the graceful
   time, then end with a terminal service_restarting error.
5. On exit, gunicorn's `worker_exit` hook (gunicorn.conf.py) calls `app.close_app`: what still
   runs is ended the same way and upstream connections are closed.
"""

from __future__ import annotations

import gc

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


def freeze_start_up() -> None:
    """Collect start-up's garbage, then move every object alive now to the permanent generation.

    The app, its libraries and the tokenizer leave objects that live as long as the process;
    frozen, full collections walk only what requests create, instead of pausing every stream.
    """
    gc.collect()
    gc.freeze()
