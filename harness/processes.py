"""Real processes for tests and benchmarks: the fake upstream and ChatWait under gunicorn/gevent.

Both bind 127.0.0.1 on a port the OS picks and report it; call stop() (fixtures do).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The virtualenv's bin, where gunicorn is: ChatWait's own (scripts/clients-drift runs the clients
# from a venv of their newest releases, and ChatWait on its pinned one: CHATWAIT_SERVER_BIN).
BIN = Path(os.environ.get("CHATWAIT_SERVER_BIN") or Path(sys.executable).parent)
START_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_", "LOCAL_"))}
    env.update(extra)
    return env


def _stop(proc: subprocess.Popen, log_file: Any) -> None:
    """SIGTERM, then SIGKILL after a grace period; the log file is removed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    log_file.close()
    Path(log_file.name).unlink(missing_ok=True)


PORT_TRIES = 3  # starts of a server whose free port was taken meanwhile
PORT_TAKEN = "another process uses that port"  # how ChatWait says so at start-up


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(command: list[str], cpus: set[int] | None) -> list[str]:
    """`command`, run on the given CPUs only (taskset), or as it is when `cpus` is None."""
    if not cpus:
        return command
    return ["taskset", "-c", ",".join(str(cpu) for cpu in sorted(cpus)), *command]


def ends_with_parent() -> None:
    """In a child before exec: the kernel sends it SIGTERM when its parent dies, so a killed
    benchmark or test run leaves no server behind (Linux's PR_SET_PDEATHSIG; elsewhere, nothing).
    The kernel watches the thread that started the child: start servers from the main thread."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(prefix: str, command: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[subprocess.Popen, Any]:
    """Start `command` in `cwd` with its output in a temporary log file; it ends with this process."""
    log_file = tempfile.NamedTemporaryFile(prefix=prefix, suffix=".log", delete=False)  # noqa: SIM115 (closed by _stop)
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=clean_env(env),
        preexec_fn=ends_with_parent,
    )
    return proc, log_file


def _wait_for(probe: Callable[[], T | None], proc: subprocess.Popen, log: Callable[[], str]) -> T:
    """The first result of `probe` that is not None; fails if the process dies or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        if proc.poll() is not None:
            raise RuntimeError(f"process exited at start-up:\n{log()}")
        time.sleep(0.05)
    raise RuntimeError(f"process did not start in {START_TIMEOUT} s:\n{log()}")


class FakeUpstream:
    """harness/fake_openai.py in a subprocess."""

    def __init__(self, *args: str, cpus: set[int] | None = None) -> None:
        command = [sys.executable, str(ROOT / "harness" / "fake_openai.py"), "--port", "0", *args]
        self.proc, self.log_file = _spawn("fake-openai-", pinned(command, cpus), {})

        def announced_port() -> int | None:
            match = re.search(r"FAKE_OPENAI_PORT=(\d+)", self._log())
            return int(match.group(1)) if match else None

        self.port = _wait_for(announced_port, self.proc, self._log)
        self.url = f"{'https' if '--tls-cert' in args else 'http'}://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"

    def _log(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def stats(self) -> dict[str, Any]:
        """Requests seen and how each ended."""
        return httpx.get(f"{self.url}/_stats", timeout=10).json()

    def outcomes_for(self, message: str) -> list[dict[str, Any]]:
        """How each upstream request whose last user message was `message` went, oldest first."""
        return [o for o in self.stats()["outcomes"] if o["message"] == message]

    def wait_for_outcome(self, message: str, how: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first request for `message` that ended as `how` (e.g. client_closed), once it has."""
        deadline = time.monotonic() + timeout
        while True:
            found = [o for o in self.outcomes_for(message) if o.get("how") == how]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {how!r} outcome for {message!r}: {self.outcomes_for(message)}")
            time.sleep(0.02)

    def stop(self) -> None:
        _stop(self.proc, self.log_file)


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on the embedded
    GGUF model, on its defaults (it interrupts a running request when another arrives), named
    `model` for its clients."""

    def __init__(self, model_path: Path, model: str = "smol", *args: str, cpus: set[int] | None = None) -> None:
        self.port = free_port()
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", model,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "1", *args,
        ]  # fmt: skip
        self.proc, self.log_file = _spawn("llama-server-", pinned(command, cpus), {})
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

        def answers() -> bool | None:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200 or None
            return None

        _wait_for(answers, self.proc, self._log)

    def _log(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: its connections reset mid-reply."""
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> None:
        _stop(self.proc, self.log_file)


class ChatWaitServer:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with the given environment; logs to a file.

    `root` is the checkout to serve (another one to compare against this one), `cpus` the CPUs
    to run on, `args` more gunicorn arguments (they win over gunicorn.conf.py).
    """

    def __init__(
        self, env: dict[str, str], root: Path = ROOT, cpus: set[int] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.env = env
        command = pinned([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", *args, "wsgi:app"], cpus)
        # The free port it is given can be taken before it binds (by another test's server, or as
        # a connection's ephemeral port): then it is started again on another one.
        for attempt in range(1, PORT_TRIES + 1):
            self.port = free_port()
            bound = {"BIND": f"127.0.0.1:{self.port}", "PYTHONUNBUFFERED": "1", **env}
            self.proc, self.log_file = _spawn("chatwait-", command, bound, cwd=root)
            self.log_path = Path(self.log_file.name)
            self.url = f"http://127.0.0.1:{self.port}"
            try:
                _wait_for(self._healthy, self.proc, self.log_text)
                return
            except RuntimeError as failed:
                self.stop()
                if attempt == PORT_TRIES or PORT_TAKEN not in str(failed) or "BIND" in env or "PORT" in env:
                    raise

    def _healthy(self) -> bool | None:
        """The server answers /health and, with several workers, each has built its app (one
        answering is not enough: a test may stop Redis while another still starts)."""
        shared = self.env.get("STREAM_STORE") == "redis"
        workers = int(self.env.get("WEB_CONCURRENCY") or ((os.cpu_count() or 1) if shared else 1))
        if workers > 1 and self.log_path.read_text(errors="replace").count('"service_started"') < workers:
            return None
        try:
            return True if httpx.get(f"{self.url}/health", timeout=2).status_code == 200 else None
        except httpx.TransportError:
            return None

    def log_text(self) -> str:
        """The log so far: every line the worker logged before this call is in it."""
        self._written_through_now()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """Every whole log line parsed as JSON (a non-JSON line fails the parse); a last line still
        being written (no newline yet) is left for the next call."""
        text = self.log_text()
        lines = [line for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # stray output (a raw traceback): shown whole, not its first line
                raise AssertionError("a log line is not JSON:\n" + "\n".join(lines[number : number + 40])) from None
        return records

    def _written_through_now(self, timeout: float = 10.0) -> None:
        """Wait until lines logged up to now are in the file.

        The worker writes its lines in order, a few milliseconds after they are logged (see
        DeferredStreamHandler): once a marker request's line shows up, every earlier one has.
        """
        marker = f"log-marker-{uuid.uuid4().hex}"
        try:  # not a probe (/health): LOG_REQUESTS=false leaves those out of the log
            httpx.head(f"{self.url}/openapi.yaml", headers={"X-Correlation-Id": marker}, timeout=timeout)
        except httpx.TransportError:
            return  # the server is gone: its log is complete
        deadline = time.monotonic() + timeout
        while marker not in self.log_path.read_text(encoding="utf-8", errors="replace"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the log line of {marker} was not written within {timeout} s")
            time.sleep(0.005)

    def stop(self) -> None:
        _stop(self.proc, self.log_file)
