"""Noticing that a client left while its request is being worked on, without writing to it.

A wait-mode request writes nothing until its reply is complete, so a write failure cannot tell
that its client left. A small greenlet waits for the request's socket to become readable: at
end of stream (or a reset) the client is gone; bytes to read (a pipelined request) end the
watch, since they say nothing about it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gevent
import gevent.event
from gevent.socket import wait_read

log = logging.getLogger("chatwait.server")

CLIENT_SOCKET = "gunicorn.socket"  # the WSGI environ key under which the server shell puts the client's socket


def client_socket(environ: Mapping[str, Any]) -> Any:
    """The socket of a request's client, as the server shell put it in the WSGI environ (None
    under a server that does not: then nobody watches for the client leaving)."""
    return environ.get(CLIENT_SOCKET)


@contextlib.contextmanager
def on_client_gone(sock: Any, callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` once if the client of `sock` disconnects while the block runs.

    No watch for sockets it cannot peek at (none, or TLS, where unread bytes are encrypted).
    """
    if sock is None or isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "fileno"):
        yield
        return
    watcher = gevent.spawn(_watch, sock, callback)
    try:
        yield
    finally:
        watcher.kill(block=False)


def until_client_gone(function: Callable[[], None], sock: Any) -> bool:
    """Run `function` in a greenlet of its own until it returns (True) or the client of `sock`
    leaves first (False: the greenlet is killed). What it raises is raised here."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            function()
            raised.append(None)
        except Exception as exc:  # handed to the caller, not to the hub's error printer
            raised.append(exc)

    gone = gevent.event.Event()
    worker = gevent.spawn(run)
    try:
        with on_client_gone(sock, gone.set):
            gevent.wait([worker, gone], count=1)
    finally:
        worker.kill()
    if raised and raised[0] is not None:
        raise raised[0]
    return bool(raised)


def _watch(sock: Any, callback: Callable[[], None]) -> None:
    try:
        wait_read(sock.fileno())
        gone = not sock.recv(1, socket.MSG_PEEK)
    except (OSError, ValueError):  # reset, or closed under us
        gone = True
    if gone:
        callback()
