"""The README's run command as a person runs it: `PORT=… ./scripts/run` with a `.env` that sets
another port listens on the environment's port (the environment wins over the file), with the
file's other settings taken; paths the shell gives relative are read from the shell's directory."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness.processes import free_port

from ..conftest import ROOT

pytestmark = pytest.mark.integration

VENV = ROOT / ".venv"


def _installed() -> None:
    """scripts/run installs requirements.txt unless its stamp says so: the test suite's venv holds
    it already (requirements-dev.txt includes it, and both add the embedded model), so its stamp
    is written as scripts/run would write it."""
    files = [*sorted(ROOT.glob("requirements*.txt")), ROOT / "scripts" / "_venv.sh"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
    runtime, dev = (VENV / f".installed-requirements{suffix}.txt" for suffix in ("", "-dev"))
    if runtime.exists() and runtime.read_text().strip() == digest:
        return
    assert dev.exists() and dev.read_text().strip() == digest, "run ./scripts/test: it installs the venv"
    runtime.write_text(digest + "\n")


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_environments_port_wins_over_the_env_files(tmp_path: Path) -> None:
    _installed()
    wanted, in_file = free_port(), free_port()
    (tmp_path / ".env").write_text(f"PORT={in_file}\nLOG_LEVEL=WARNING\n")
    (tmp_path / "keys.txt").write_text("run-script-key-0123456789abcdef name=runner\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_", "BIND"))}
    # Both relative: read from the shell's directory (tmp_path), not the checkout the server runs in.
    environment.update(PORT=str(wanted), CHATWAIT_ENV_FILE=".env", CHATWAIT_API_KEYS_FILE="keys.txt")
    environment.update(WEB_CONCURRENCY="1")
    run = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        cwd=tmp_path,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _answers(wanted):
            assert run.poll() is None, run.stdout.read().decode(errors="replace")[-2000:] if run.stdout else ""
            assert time.monotonic() < deadline, "scripts/run did not listen on the environment's PORT"
            time.sleep(0.3)
        assert not _answers(in_file), "nothing listens on the .env file's port"
        config = httpx.get(f"http://127.0.0.1:{wanted}/ready", timeout=10).json()
        assert config["provider"] == "local", "the embedded model, as on a fresh machine"
        assert config["client_keys"] is True, "keys.txt, relative, read from the shell's directory"
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        output = run.communicate(timeout=60)[0].decode(errors="replace")
    assert f"Starting ChatWait on 0.0.0.0:{wanted}" in output
    assert f"The chat page: http://localhost:{wanted}/" in output, "the page's address, to open"
    assert '"INFO"' not in output, "the file's LOG_LEVEL=WARNING was taken"
