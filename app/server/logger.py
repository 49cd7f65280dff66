"""gunicorn's logger class for ChatWait: no access line is built that would not be written."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn import glogging


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, building an access line only when `gunicorn.access` would write it.

    With a `logconfig_dict`, gunicorn formats every request's access fields before its logger
    drops them; ours keeps `gunicorn.access` at WARNING, since the app logs each request itself
    (request_received/request_completed).
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)
