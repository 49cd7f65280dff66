"""Real Redis servers for tests and benchmarks: one on a free loopback port (`RedisServer`), and
the fault tests' topologies, each in a folder of its own: one server (with or without
persistence), a primary with a replica and a Sentinel, and a Cluster of three primaries with a
replica each. Every process is stopped by `stop()`; faults are
injected as an operator (or a crash) would: SIGKILL, SIGSTOP/SIGCONT, CONFIG SET."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from harness.processes import PORT_TRIES, ends_with_parent, free_port, pinned

START_SECONDS = 30.0


class RedisServer:
    """One redis-server (or redis-sentinel) on its own loopback port and folder; stop/start keep
    both. With no `folder`, a temporary one (removed by `stop`) and no persistence; `cpus`: the
    CPUs it runs on (taskset), for benchmarks."""

    def __init__(
        self,
        folder: Path | None = None,
        args: list[str] | None = None,
        sentinel: bool = False,
        cpus: set[int] | None = None,
    ) -> None:
        self.port = free_port()
        self._temporary = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="chatwait-redis-"))
        self.args = ["--save", "", "--appendonly", "no"] if args is None else args
        self.sentinel = sentinel
        self.cpus = cpus
        self.proc: subprocess.Popen | None = None
        self._client: redis.Redis | None = None
        for attempt in range(1, PORT_TRIES + 1):  # its free port may be taken before it binds
            try:
                self.start()
                return
            except AssertionError as failed:
                if attempt == PORT_TRIES or "Address already in use" not in str(failed):
                    raise
                self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) with the same port, folder and arguments; returns once it answers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        where = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        command = pinned(["redis-server", *self.args, *where, *(["--sentinel"] if self.sentinel else [])], self.cpus)
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=ends_with_parent
        )
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            assert self.proc.poll() is None, (self.folder / "redis.log").read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, f"redis on {self.port} did not start"
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self) -> redis.Redis:
        """This server's client (one, reused): closed when the server stops or is killed, since a
        client left open warns when collected, in whichever test that happens."""
        if self._client is None:
            self._client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def kill(self) -> None:
        """SIGKILL: what was not persisted is gone."""
        self._close_client()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (a temporary folder goes with what it held)."""
        self._close_client()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._temporary:
            shutil.rmtree(self.folder, ignore_errors=True)


class Topology:
    """Processes under one temporary folder; `env` is ChatWait's settings to reach them."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="chatwait-redis-"))
        self.processes: list[RedisServer] = []
        self.env: dict[str, str] = {}

    def _server(self, name: str, args: list[str], sentinel: bool = False) -> RedisServer:
        process = RedisServer(self.root / name, args, sentinel=sentinel)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Standalone(Topology):
    """One server; with `persistent`, every write is in its append-only file before it answers."""

    def __init__(self, persistent: bool = False) -> None:
        super().__init__()
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
        self.server = self._server("server", ["--save", "", *persistence])
        self.env = {"REDIS_URL": self.server.url}


class WithSentinel(Topology):
    """A primary, its replica, and one Sentinel that fails over a second after the primary dies."""

    MASTER = "chatwait-primary"

    def __init__(self) -> None:
        super().__init__()
        self.primary = self._server("primary", ["--save", "", "--appendonly", "no"])
        self.replica = self._server(
            "replica", ["--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(self.primary.port)]
        )
        config = self.root / "sentinel" / "sentinel.conf"
        config.parent.mkdir(parents=True)
        config.write_text(
            f"sentinel monitor {self.MASTER} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
            f"sentinel failover-timeout {self.MASTER} 5000\n"
            f"sentinel parallel-syncs {self.MASTER} 1\n"
        )
        self.sentinel = self._server("sentinel", [str(config)], sentinel=True)
        self._until_replicated()
        self.env = {"REDIS_SENTINELS": f"127.0.0.1:{self.sentinel.port}", "REDIS_SENTINEL_MASTER": self.MASTER}

    def _until_replicated(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while self.replica.client().info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.1)

    def primary_port(self) -> int:
        """The port of the primary the Sentinel names now."""
        with contextlib.closing(self.sentinel.client()) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(self.MASTER)[1])


class Cluster(Topology):
    """Three primaries with a replica each; a replica takes over two seconds after its primary dies."""

    def __init__(self) -> None:
        super().__init__()
        args = [
            "--save",
            "",
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
            "--cluster-require-full-coverage",
            "no",
            "--cluster-replica-validity-factor",
            "0",
        ]
        own = ["--cluster-config-file", "nodes.conf", "--cluster-port"]  # the bus port: any free one
        self.nodes = [self._server(f"node-{n}", [*args, *own, str(free_port())]) for n in range(6)]
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self.until_healthy()
        self.env = {"REDIS_URL": f"redis+cluster://127.0.0.1:{self.nodes[0].port}"}

    def until_healthy(self, seconds: float = START_SECONDS) -> None:
        """Wait until every live node says the cluster is ok and every slot is served by a
        primary that is alive (after a primary died: once its replica has taken over)."""
        deadline = time.monotonic() + seconds
        while not all(self._ok(node) for node in self.nodes if node.proc is not None):
            assert time.monotonic() < deadline, "the cluster did not settle"
            time.sleep(0.2)

    def _ok(self, node: RedisServer) -> bool:
        alive = {other.port for other in self.nodes if other.proc is not None}
        try:
            info = node.client().cluster("info")
            slots = node.client().cluster("slots")
        except redis.RedisError:
            return False
        served = sum(end - start + 1 for start, end, primary, *_ in _ranges(slots) if primary in alive)
        return info.get("cluster_state") == "ok" and served == 16384

    def a_primary(self) -> RedisServer:
        """One of the nodes that is a primary now."""
        for node in self.nodes:
            if node.proc is not None and node.client().info("replication").get("role") == "master":
                return node
        raise AssertionError("no primary")


def _ranges(slots: object) -> list[tuple[int, int, int]]:
    """CLUSTER SLOTS as (first slot, last slot, the primary's port), whichever shape redis-py gives."""
    if isinstance(slots, dict):  # redis-py's parsed form: {(start, end): {"primary": (host, port), ...}}
        return [(start, end, int(found["primary"][1])) for (start, end), found in slots.items()]
    return [(int(entry[0]), int(entry[1]), int(entry[2][1])) for entry in slots]  # type: ignore[union-attr]
