"""A reload (SIGHUP) on the memory store: a worker that drains hands its keys' counters to the
workers its master starts, through files in a folder of the master's (CHATWAIT_RELOAD_DIR, made
private at start-up), so that no key may spend its budget again after each reload.

At the drain's start the worker writes every key's spend and minute windows; when it exits, what
its last generations settled since (the spend's change). A worker of the same master takes each
file within a second (renamed first: one taker), adds it to its own counters, and deletes it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .memory import MemoryCounters

log = logging.getLogger("chatwait.limits")

VARIABLE = "CHATWAIT_RELOAD_DIR"
RELOADED = "CHATWAIT_RELOADED"  # set by the master once it has reloaded: its workers take hand-overs
MAX_FILE_BYTES = 16 * 1_048_576  # a hand-over larger than this is not read (MAX_KEYS keys' counters are far less)
MAX_FILES = 64  # taken in one look


def folder() -> Path | None:
    """The master's hand-over folder (None: not under a gunicorn master, or not a private folder)."""
    named = os.environ.get(VARIABLE)
    if not named:
        return None
    path = Path(named)
    try:
        found = path.lstat()
    except OSError:
        return None
    private = path.is_dir() and not path.is_symlink() and found.st_uid == os.getuid() and found.st_mode & 0o077 == 0
    return path if private else None


def reloaded() -> bool:
    """Whether this worker's master has reloaded (its counters come by hand-over, not from the
    spend report: starting from both would count the spend twice)."""
    return os.environ.get(RELOADED) == "1"


def hand_over(place: Path, counters: MemoryCounters, before: dict[str, Any] | None) -> dict[str, Any]:
    """Write what `counters` hold (only the spend's change since `before`, when given); the state
    written, for the next hand-over to start from."""
    state = counters.snapshot()
    found = state if before is None else change(before, state)
    if found:
        name = f"{os.getpid()}-{'settled' if before is not None else 'drain'}"
        partial = place / f".{name}.tmp"
        try:
            partial.write_text(json.dumps(found), encoding="utf-8")
            partial.rename(place / f"{name}.json")
        except OSError as error:  # a full disk: the next workers start from nothing, as before
            log.warning("counters_not_handed_over", extra={"error_type": type(error).__name__})
        else:
            log.info("counters_handed_over", extra={"keys": len(found)})
    return state


def take(place: Path, counters: MemoryCounters) -> int:
    """Add every hand-over file in `place` to `counters`; how many were taken."""
    taken = 0
    for path in _handed(place):
        claimed = path.with_suffix(f".{os.getpid()}.taking")
        try:
            path.rename(claimed)
        except OSError:
            continue  # another worker took it
        try:
            if claimed.stat().st_size <= MAX_FILE_BYTES:
                counters.merge(json.loads(claimed.read_text(encoding="utf-8")))
                taken += 1
        except (OSError, ValueError, TypeError, AttributeError) as error:
            log.warning("counters_not_taken", extra={"error_type": type(error).__name__})
        finally:
            claimed.unlink(missing_ok=True)
    if taken:
        log.info("counters_taken", extra={"files": taken})
    return taken


def _handed(place: Path) -> list[Path]:
    """The hand-over files in `place`, oldest name first, MAX_FILES at most (one directory read:
    a worker looks every second, and nearly always finds none)."""
    try:
        with os.scandir(place) as entries:
            names = sorted(entry.name for entry in entries if entry.name.endswith(".json"))
    except OSError:
        return []
    return [place / name for name in names[:MAX_FILES]]


def change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the spend (and the reservations) of each key changed from one snapshot to the next."""
    found: dict[str, Any] = {}
    for name, held in after.items():
        for field in ("spent", "reserved"):
            was = before.get(name, {}).get(field, {})
            now = held.get(field, {})
            moved = {period: nano - was.get(period, 0) for period, nano in now.items()}
            if any(moved.values()):
                found.setdefault(name, {})[field] = {period: nano for period, nano in moved.items() if nano}
    return found
