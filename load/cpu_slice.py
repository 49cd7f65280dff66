"""A fixed slice of one CPU for a process (Linux cgroups): a small dedicated core on a small machine.

On a 2-core machine two workers and their load generator cannot each have cores of their own.
`CpuSlice` gives a process at most `share` of one CPU (a CFS quota per short period) and
priority over ordinary processes within it (a high weight), so that a worker pinned to a CPU
behaves like a core of that size, and the load generator uses what is left. `stat()` tells
whether the worker used its whole slice (throttled periods) or left some of it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")
MIN_QUOTA_US = 1000  # the kernel refuses shorter quotas


def available() -> bool:
    """Whether this process may make CPU cgroups (root, with the cpu controller mounted)."""
    if (V1 / "cpu.cfs_quota_us").exists():
        return os.access(V1, os.W_OK)
    controllers = V2 / "cgroup.controllers"
    return controllers.exists() and "cpu" in controllers.read_text().split() and os.access(V2, os.W_OK)


class CpuSlice:
    """A cgroup that holds processes to `share` of one CPU (0 < share <= 1)."""

    def __init__(self, name: str, share: float) -> None:
        period = max(MIN_QUOTA_US, round(MIN_QUOTA_US / share))
        self.quota_us, self.period_us = round(period * share), period
        self.v1 = (V1 / "cpu.cfs_quota_us").exists()
        self.path = (V1 if self.v1 else V2) / f"chatwait-bench-{name}-{os.getpid()}"
        self.path.mkdir(exist_ok=True)
        if self.v1:
            (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
            (self.path / "cpu.shares").write_text("262144")
        else:
            (self.path / "cpu.max").write_text(f"{self.quota_us} {self.period_us}")
            (self.path / "cpu.weight").write_text("10000")

    @property
    def share(self) -> float:
        return self.quota_us / self.period_us

    def add(self, pid: int) -> None:
        """Move process `pid` into the slice."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def stat(self) -> dict[str, int]:
        """The kernel's counters: periods, throttled periods, throttled time (ns or µs)."""
        lines = (self.path / "cpu.stat").read_text().split("\n")
        return {name: int(value) for name, _, value in (line.partition(" ") for line in lines) if value}

    def close(self) -> None:
        """Move the slice's processes back to the root group, then remove the slice."""
        root = V1 if self.v1 else V2
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(pid)
            self.path.rmdir()
