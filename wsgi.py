"""WSGI entry point: gevent patches the standard library before anything else is imported.

The start-up steps, in order, are described in app/server/startup.py.
"""

from gevent import monkey

monkey.patch_all()

from app import create_app  # noqa: E402  (must come after patch_all)
from app.server.startup import freeze_start_up  # noqa: E402

app = create_app()
freeze_start_up()
