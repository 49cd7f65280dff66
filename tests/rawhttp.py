"""Test-side raw HTTP/1.1 over sockets: send exact bytes, read back every response until close,
and watch the server (its /health latency and its worker's memory) while an attack runs."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@dataclasses.dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int, timeout: float = 15.0, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_close(sock: socket.socket, limit: int = 50_000_000) -> bytes:
    """Every byte the server sends until it closes the connection (or resets it)."""
    data = bytearray()
    while len(data) < limit:
        try:
            block = sock.recv(65536)
        except ConnectionResetError:
            break
        if not block:
            break
        data += block
    return bytes(data)


def responses(data: bytes, head_only: bool = False) -> list[RawResponse]:
    """The responses in `data`, one after the other (Content-Length or chunked bodies)."""
    found = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"an incomplete response head: {head[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if head_only:
            pass
        elif "content-length" in headers:
            length = int(headers["content-length"])
            body, data = data[:length], data[length:]
        elif headers.get("transfer-encoding") == "chunked":
            body, data = _dechunk(data)
        found.append(RawResponse(int(status_line.split(" ")[1]), headers, body))
    return found


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    body = bytearray()
    while True:
        line, _, data = data.partition(b"\r\n")
        if not line:  # cut off mid-body: what there is
            return bytes(body), b""
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return bytes(body), data.partition(b"\r\n")[2]
        body += data[:size]
        data = data[size + 2 :]


def worker_rss_kb(master_pid: int) -> int:
    """Resident memory of the gunicorn master's (only) worker, in KB."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    assert len(children) == 1, children
    status = Path(f"/proc/{children[0]}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


class HealthProbe:
    """Asks GET /health every `interval` s in a thread while a block runs; records every latency.

    Timings are recorded (artifacts/health-probes.json), not asserted: these machines are
    shared. What is asserted is that every probe got its 200 within a generous timeout.
    """

    def __init__(
        self, url: str, name: str, interval: float = 0.05, timeout: float = 10.0, master_pid: int | None = None
    ) -> None:
        self.url = url
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.master_pid = master_pid  # also sample its worker's RSS: `peak_rss_kb`
        self.idle_rss_kb = self.peak_rss_kb = 0
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        if self.master_pid is not None:
            self.idle_rss_kb = worker_rss_kb(self.master_pid)
        self._thread.start()
        self._first.wait(self.timeout)  # probing is under way before the attack starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)
        growth = (self.peak_rss_kb - self.idle_rss_kb) / 1000 if self.master_pid is not None else None
        _record(self.name, self.latencies, growth)
        assert not self.failures, f"/health failed during {self.name}: {self.failures[:3]}"
        assert self.latencies, "the probe never ran"

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(f"{self.url}/health").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                else:
                    if status != 200:
                        self.failures.append(str(status))
                    self.latencies.append(time.perf_counter() - started)
                if self.master_pid is not None:
                    self.peak_rss_kb = max(self.peak_rss_kb, worker_rss_kb(self.master_pid))
                self._first.set()
                self._stop.wait(self.interval)


def _record(name: str, latencies: list[float], rss_growth_mb: float | None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "health-probes.json"
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = {}
    ordered = sorted(latencies)
    recorded[name] = {
        "probes": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2) if ordered else None,
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        "rss_growth_mb": rss_growth_mb,
    }
    path.write_text(json.dumps(recorded, indent=1, sort_keys=True))
