"""How a generation is stopped from outside (DELETE, expiry, a client gone, a restart)."""

from __future__ import annotations

from ..errors import ApiError

STOPPING_DETAIL = "This worker is stopping (a deploy or restart) and starts no new generation."


def restarting() -> StreamCancelled:
    """What stops a generation when its worker stops: it ends with a service_restarting error."""
    error = ApiError("service_restarting", "The worker serving this generation stopped (a deploy or restart).")
    return StreamCancelled("restarting", error)


class StreamCancelled(BaseException):
    """Raised inside a producer greenlet to stop its generation (DELETE, expiry, a client gone,
    a restart).

    A BaseException, like GreenletExit, so that no library's `except Exception` swallows it.
    With an `error`, the generation ends with that error rather than `cancelled` (a restart).
    """

    def __init__(self, reason: str = "stopped", error: ApiError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
