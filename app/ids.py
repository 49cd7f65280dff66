"""Ids: random ones for streams and requests (128 random bits as 32 hex digits), and this
process's id without a system call.

The random form is `uuid.uuid4().hex`'s, without building a UUID object, twice on every
streaming request's path. The process id is read once and again after a fork: `os.getpid` is
a system call each time, and the metrics asked for it on every update.
"""

from __future__ import annotations

import os


def random_id() -> str:
    """A fresh id: 32 hex digits from the OS's random source."""
    return os.urandom(16).hex()


_pid = os.getpid()


def current_pid() -> int:
    """This process's id (refreshed in a forked child)."""
    return _pid


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
