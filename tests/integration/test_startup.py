"""Start-up and shutdown: a bad setting stops the service with its message; gevent must patch
first; start-up objects are frozen; a stopping worker stops its live generations."""

from __future__ import annotations

import ast
import json
import signal
import socket
import subprocess
import sys
import uuid

import httpx
import pytest

from app import create_app
from harness.processes import BIN, ROOT, clean_env

from ..sse import iter_events

pytestmark = pytest.mark.integration


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=ROOT, env=clean_env(env), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "env,message",
    [
        ({"OPENAI_API_KEY": "sk-x", "MAX_TOKENS": "lots"}, "MAX_TOKENS='lots' is not a whole number"),
        ({"LLM_PROVIDER": "openai"}, "LLM_PROVIDER=openai needs OPENAI_API_KEY"),
        ({"LOCAL_MODEL_PATH": "/models/missing.gguf"}, "LOCAL_MODEL_PATH='/models/missing.gguf' is not a file"),
        ({"OPENAI_API_KEY": "sk-x", "KEEPALIVE_SECONDS": "-1"}, "KEEPALIVE_SECONDS=-1 is out of range"),
        ({"OPENAI_API_KEY": "sk-x", "PORT": "http"}, "PORT='http' is not valid"),
    ],
)
def test_bad_configuration_stops_gunicorn_with_a_clear_message(env, message) -> None:
    result = _run([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], BIND="127.0.0.1:0", **env)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "sk-x" not in result.stdout + result.stderr


def test_the_app_refuses_to_run_unpatched() -> None:
    with pytest.raises(RuntimeError, match="gevent has not patched"):
        create_app({"OPENAI_API_KEY": "sk-x"})


def test_importing_the_app_unpatched_in_a_fresh_process_fails() -> None:
    """No setting turns the check off (a test switch left on in production would)."""
    script = "from app import create_app; create_app()"
    result = _run([sys.executable, "-c", script], OPENAI_API_KEY="sk-x", TESTING="true")
    assert result.returncode != 0 and "gevent has not patched" in result.stderr


def test_wsgi_patches_before_anything_else() -> None:
    tree = ast.parse((ROOT / "wsgi.py").read_text())
    statements = tree.body[1:] if ast.get_docstring(tree) else tree.body
    assert ast.unparse(statements[0]) == "from gevent import monkey"
    assert ast.unparse(statements[1]) == "monkey.patch_all()"


def test_gunicorn_configuration() -> None:
    result = _run(
        [
            sys.executable,
            "-c",
            "import runpy; c = runpy.run_path('gunicorn.conf.py'); "
            "print(c['worker_class'], c['workers'], c['worker_connections'], c['preload_app'], c['bind'])",
        ],
        OPENAI_API_KEY="sk-x",
        PORT="9000",
    )
    assert result.stdout.split() == ["app.server.worker.ChatWaitWorker", "1", "4000", "False", "0.0.0.0:9000"]


def test_a_stopping_worker_stops_the_generations_it_still_runs(start_server, fake) -> None:
    """On SIGTERM, a generation whose client has gone (it goes on, for a resume) is ended by the
    stopping worker: its upstream request is closed and the stream ends with service_restarting."""
    running = start_server()
    message = f"{uuid.uuid4().hex} @tokens=2000 @delay_ms=20"
    with (
        httpx.Client(base_url=running.url, timeout=30) as client,
        client.stream("POST", "/v1/chat/streaming", json={"message": message}) as response,
    ):
        stream_id = response.headers["x-stream-id"]
        events = iter_events(response)
        assert [next(events).event for _ in range(3)] == ["stream", "chunk", "chunk"]
    running.proc.send_signal(signal.SIGTERM)
    running.proc.wait(20)
    assert fake.wait_for_outcome(message, "client_closed")["tokens"] < 2000
    lines = [line for line in running.log_path.read_text().splitlines() if stream_id in line]
    ended = [record for record in map(json.loads, lines) if record.get("event") == "stream_failed"]
    assert [line["error_code"] for line in ended] == ["service_restarting"], lines


def test_a_port_in_use_stops_the_start_naming_the_setting_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            OPENAI_API_KEY="sk-x",
            BIND=f"127.0.0.1:{port}",
        )
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in said and "Set PORT (or BIND)" in said, said
