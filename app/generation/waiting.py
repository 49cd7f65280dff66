"""Wait-mode generations: each runs in its own greenlet, so that it can be ended from outside.

A wait-mode client gets nothing until its reply is complete. If it disconnects meanwhile, its
generation is cancelled (the upstream request closed) instead of running on for nobody; when
the worker stops, the generations still running end with `service_restarting`.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from ..errors import ApiError
from ..hub.disconnect import on_client_gone
from .cancel import STOPPING_DETAIL, StreamCancelled, restarting
from .outcome import Outcome
from .relay import Relay

log = logging.getLogger("chatwait.wait")


class WaitGenerations:
    """The wait-mode generations running in this worker."""

    def __init__(self) -> None:
        self._running: set[gevent.Greenlet] = set()
        self._stopped: set[gevent.Greenlet] = set()  # sent a stop already: a second would hit its ending
        self._accepting = True

    def __len__(self) -> int:
        return len(self._running)

    def run(self, relay: Relay, client_socket: Any) -> Outcome:
        """Run `relay` to its end; cancelled if the client of `client_socket` disconnects first."""
        if not self._accepting:
            raise ApiError("service_restarting", STOPPING_DETAIL)
        generation = gevent.spawn(relay.run)
        self._running.add(generation)

        def client_gone() -> None:
            log.debug("client_detached", extra={"mode": "wait"})  # its completion line says `client_left`
            self._stop(generation, StreamCancelled("client_gone"))

        try:
            with on_client_gone(client_socket, client_gone):
                return generation.get()
        finally:
            self._stop(generation, StreamCancelled("request_ended"))  # this request itself was killed
            self._running.discard(generation)
            self._stopped.discard(generation)

    def _stop(self, generation: gevent.Greenlet, reason: StreamCancelled) -> None:
        if not generation.dead and generation not in self._stopped:
            self._stopped.add(generation)
            generation.kill(reason, block=False)

    @property
    def accepting(self) -> bool:
        """Whether new generations are taken (until the worker stops)."""
        return self._accepting

    def stop_accepting(self) -> None:
        """Refuse new generations (ApiError(service_restarting)): the worker stops."""
        self._accepting = False

    def end_all(self) -> None:
        """End every running generation with service_restarting."""
        for generation in list(self._running):
            self._stop(generation, restarting())
