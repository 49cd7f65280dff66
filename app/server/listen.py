"""Whether the address gunicorn is told to listen on is free, checked before gunicorn binds it,
so that a port in use stops start-up with the variable to change rather than gunicorn's retries."""

from __future__ import annotations

import contextlib
import errno
import socket


def address_in_use(bind: str) -> bool:
    """Whether `bind` (host:port, [v6]:port) is taken by another listener; unix sockets and
    addresses that cannot be checked count as free (gunicorn reports its own errors for them)."""
    if bind.startswith(("unix:", "fd://")) or ":" not in bind:
        return False
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit():
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False
