"""The multiprocess folder's workers: how each writes its values there (`multiprocess_values`), and
a worker that exits (or died) has its counters and histograms folded into the archive files,
under the folder's lock, so reloads do not grow it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from gevent import monkey
from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import mark_process_dead

from ..ids import current_pid
from . import MULTIPROC_ENV

SUMMED_KINDS = ("counter", "histogram")  # what a worker that exits leaves in the archive files
ARCHIVE = "archive"  # counter_archive.db, histogram_archive.db


def multiprocess_values() -> type:
    """The multiprocess values as prometheus_client makes them, told the process id by a function
    that makes no system call (its default, os.getpid, made one on every update), and guarded by
    an OS lock rather than the one gevent patched in (an update never yields to another greenlet,
    and a thread of the hub's pool waits on an OS lock as it should)."""
    patched = values.Lock
    values.Lock = monkey.get_original("_thread", "allocate_lock")
    try:
        return values.MultiProcessValue(current_pid)
    finally:
        values.Lock = patched


def retire_worker(pid: int) -> None:
    """Fold the counters and histograms of worker `pid` into the archive files and delete its
    files (its live gauges with them), under the folder's lock: a scrape sees them once."""
    folder = Path(os.environ[MULTIPROC_ENV])
    with folder_lock(exclusive=True):
        for kind in SUMMED_KINDS:
            own = folder / f"{kind}_{pid}.db"
            if not own.exists():
                continue  # retired already by another worker, or it never counted one
            archive = MmapedDict(str(folder / f"{kind}_{ARCHIVE}.db"))
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(own)):
                    archive.write_value(key, archive.read_value(key)[0] + value, timestamp)
            finally:
                archive.close()
            own.unlink()
        mark_process_dead(pid, str(folder))


@contextlib.contextmanager
def folder_lock(exclusive: bool) -> Iterator[None]:
    """The metrics folder's lock (flock): shared for a scrape, exclusive to retire a worker."""
    with open(Path(os.environ[MULTIPROC_ENV]) / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
