"""Prometheus metrics (`/metrics`): what the service counts and measures, per process or, under
several gunicorn workers, summed over them (prometheus_client's multiprocess mode).

Importing this package stays light, like `app.config`: gunicorn.conf.py calls the functions
here in the master to prepare the multiprocess folder before any worker starts. The metrics
themselves live in `app.metrics.catalogue`, imported by the app once gevent has patched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREPARED_BY = "CHATWAIT_METRICS_PREPARED_BY"  # the master's pid, once it has prepared the folder
_CREATED = "CHATWAIT_METRICS_CREATED"  # the folder, when the master created it
_PREFIX = "chatwait-metrics-"  # then its master's pid, so that a dead master's folder is found


def prepare_multiprocess_dir() -> tuple[Path, bool]:
    """Make PROMETHEUS_MULTIPROC_DIR ready for a new server run, before workers start: the
    folder it names (emptied of an earlier run's files), else a new temporary one. Returns the
    folder and whether it was created here (then `remove_multiprocess_dir` deletes it at exit;
    folders of masters killed before that are deleted by the next start).

    Only once per master process: gunicorn reads its configuration again on SIGHUP, and the
    running workers' files must stay."""
    given = os.environ.get(MULTIPROC_ENV, "").strip()
    if given and os.environ.get(_PREPARED_BY) == str(os.getpid()):
        return Path(given), os.environ.get(_CREATED) == given
    os.environ[_PREPARED_BY] = str(os.getpid())
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
        return folder, False
    _remove_orphans(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
    os.environ[MULTIPROC_ENV] = os.environ[_CREATED] = str(folder)
    return folder, True


def _remove_orphans(parent: Path) -> None:
    """Delete the temporary folders of masters that are gone without removing theirs (SIGKILL)."""
    for folder in parent.glob(f"{_PREFIX}*-*"):
        pid = folder.name.removeprefix(_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid is running (this user's or another's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def remove_multiprocess_dir(folder: Path) -> None:
    """Delete a folder `prepare_multiprocess_dir` created (the server has stopped)."""
    shutil.rmtree(folder, ignore_errors=True)
