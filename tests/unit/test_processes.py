"""Helper processes end with the process that started them, however it ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from harness import processes, redis_servers
from harness.processes import ROOT

# A parent that starts a long sleeper the way benchmarks and tests start servers, prints its
# pid, then waits to be killed.
PARENT = """
import subprocess, sys, time
from harness.processes import ends_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=ends_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waits for its reaper: it has ended
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_parent_leaves_no_helper_process_behind() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)  # no handler, no finally: only the kernel can stop the child
    parent.wait(10)
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_redis_server_whose_free_port_was_taken_meanwhile_starts_on_another(monkeypatch) -> None:
    """The port `free_port` names can be taken before the server binds it (another test's server,
    a connection's ephemeral port): the server starts again on another port, not a failed test."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(redis_servers, "free_port", lambda: next(ports, None) or processes.free_port())
        server = redis_servers.RedisServer()
        try:
            assert server.port != taken.getsockname()[1] and server.client().ping()
        finally:
            server.stop()
