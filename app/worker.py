"""ChatWait's gunicorn worker: gunicorn's gevent worker with a cheaper write to the client.

A streamed reply is one small write per token: the client sockets of this worker send each
directly (see `app.directsend`).

gunicorn imports this module in its master too, before gevent patches anything: it imports
only what the master already has.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventWorker

from .directsend import send_directly


class ChatWaitWorker(GeventWorker):
    """gunicorn's gevent worker, serving each plain connection through a DirectSendSocket."""

    def handle(self, listener, client, addr) -> None:  # noqa: ANN001 - gunicorn's signature
        super().handle(listener, send_directly(client), addr)
