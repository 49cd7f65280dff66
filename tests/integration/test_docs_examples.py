"""Every code block of the README and docs/clients.md, as a reader pastes it: shell blocks run by
bash, Python blocks in one session per page, against a ChatWait started here (localhost:8000
pointed at it), each answer checked. Blocks for the embedded model run on it; those that say they
need a real model run against the fake upstream playing one (it calls the tools it is given and
quotes their results). A block that cannot run here says why, and a new block fails the test until
it is placed in `CASES`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from harness.processes import ChatWaitServer

from ..conftest import ROOT, server_env

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # the embedded model is CPU-bound: alone

DOCUMENTS = ("README.md", "docs/clients.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
EMBEDDED, REAL, NOT_RUN = "embedded", "real model", "not run"
BASH_SECONDS = 300
MODEL = "SmolLM2-135M-Instruct.Q4_1"


@dataclass(frozen=True)
class Case:
    """How one block is exercised: where it runs and what its output must show, or why not here."""

    runs: str  # EMBEDDED, REAL or NOT_RUN
    check: Callable[[str], None] | None = None  # given what the block printed
    why: str = ""  # NOT_RUN: where it is exercised instead, or why it cannot be


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _try_it(out: str) -> None:
    replies = _json_lines(out)
    assert "4" in replies[0]["content"] and replies[0]["finish_reason"] == "stop", replies[0]
    assert out.count("event: done") >= 1, "the haiku streamed to its end"
    assert replies[1]["content"], "the multi-turn reply"
    stopped = [r for r in replies if r.get("stream_id")]
    assert stopped[-1]["status"] in ("cancelled", "already_finished"), "the resumed stream was stopped"
    assert replies[-1]["status"] == "ready", "GET /ready"


def _tool_call(out: str) -> None:
    (call,) = json.loads(out)["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "weather" and "city" in json.loads(call["function"]["arguments"])


def _completion_resumed(out: str) -> None:
    events = [line for line in out.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) >= 2, out[-500:]


def _responses(out: str) -> None:
    # A reply may run to LOCAL_MAX_TOKENS: `incomplete`, as OpenAI's at max_output_tokens.
    assert re.search(r"^event: response\.(completed|incomplete)$", out, re.M), out[-500:]
    answer = json.loads(out.strip().splitlines()[-1])  # the second turn's response object
    assert answer["status"] in ("completed", "incomplete") and answer["previous_response_id"], answer


def _four(out: str) -> None:
    assert "4" in out and "completion_tokens=" in out, out


def _printed(out: str) -> None:
    assert len(out.strip()) > 0, "it printed the reply"


def _said(out: str, expected: str) -> None:
    assert out == expected


def _quotes_tool(out: str) -> None:
    assert "clear" in out, f"the model's answer quotes the tool's result: {out!r}"


ELSEWHERE = "run through a cut mid-reply by tests/e2e/test_readme_snippets.py"
SETUP = "the two commands: CI runs scripts/test; scripts/run starts what this test starts"
FRAMES = "an example of a stream's frames (test_sse checks them byte for byte)"
ERROR = "an example error (test_errors checks the catalogue)"
SOCKET = "run through a dropped socket by test_responses_socket.py"
DOCKER = "Docker is not available here: the Dockerfile mirrors scripts/run"
CASES: dict[tuple[str, str], Case] = {
    ("README.md", "./scripts/test     #"): Case(NOT_RUN, why=SETUP),
    ("README.md", "# Wait mode: one JSON reply"): Case(EMBEDDED, _try_it),
    ("README.md", "retry: 2000"): Case(NOT_RUN, why=FRAMES),
    ("README.md", '"error_code": "input_too_long"'): Case(NOT_RUN, why=ERROR),
    ("README.md", "from openai import OpenAI"): Case(EMBEDDED, _four),
    ("README.md", '"tool_choice": "required"'): Case(EMBEDDED, _tool_call),
    ("README.md", "chat/completions/$ID/stream"): Case(EMBEDDED, _completion_resumed),
    ("README.md", '"background": true'): Case(EMBEDDED, _responses),
    ("README.md", "# KEY [name=NAME]"): Case(NOT_RUN, why="the keys file's format (test_client_keys loads such files)"),
    ("README.md", "upstream = [  #"): Case(NOT_RUN, why="an UPSTREAMS_FILE: test_upstreams_config loads it"),
    ("README.md", "docker build"): Case(NOT_RUN, why=DOCKER),
    ("README.md", "bench.py --quick"): Case(NOT_RUN, why="a benchmark of minutes: docs/performance.md has its figures"),
    ("docs/clients.md", "async function chat("): Case(NOT_RUN, why=ELSEWHERE),
    ("docs/clients.md", "def chat("): Case(NOT_RUN, why=ELSEWHERE),
    ("docs/clients.md", "def resumable_stream("): Case(EMBEDDED, _printed),
    ("docs/clients.md", "def resumable_events("): Case(EMBEDDED, _printed),
    ("docs/clients.md", "def run_agent("): Case(REAL, _quotes_tool),
    ("docs/clients.md", "def resumable_response("): Case(EMBEDDED, _printed),
    ("docs/clients.md", "async function respond("): Case(NOT_RUN, why=ELSEWHERE),
    ("docs/clients.md", '"function_call_output"'): Case(REAL, lambda out: _said(out, "The tool said: clear, 21 C\n")),
    ("docs/clients.md", "def turn_over_socket("): Case(NOT_RUN, why=SOCKET),
}


def _blocks() -> list[tuple[str, str, str]]:
    """(document, language, text) of every fenced block, in order."""
    found = []
    for document in DOCUMENTS:
        for language, text in FENCE.findall((ROOT / document).read_text(encoding="utf-8")):
            found.append((document, language, text))
    return found


def _case(document: str, text: str) -> tuple[str, Case]:
    matches = [(marker, case) for (where, marker), case in CASES.items() if where == document and marker in text]
    assert len(matches) == 1, f"a block of {document} is not placed in CASES (or in two): {text[:120]!r}"
    return matches[0]


def test_every_block_is_run_here_or_says_where_and_why() -> None:
    placed = [_case(document, text)[0] for document, _, text in _blocks()]
    assert sorted(placed) == sorted(marker for _, marker in CASES), "a case whose block is gone"


def test_the_docker_block_asks_only_what_the_image_does() -> None:
    """Docker cannot run here (DOCKER): the README's block is held to the Dockerfile instead. Its
    port is the one exposed; its env file is .env.example's kind; the key file it mounts is where
    the variable it sets points; HUP goes to the container it named, whose first process is
    gunicorn (exec form: it gets the signal and reloads); the compile it warns of is in the build;
    the health check it names asks /ready."""
    (block,) = [text for _, _, text in _blocks() if "docker build" in text]
    dockerfile = (ROOT / "Dockerfile").read_text()
    published = re.search(r"-p (\d+):(\d+)", block)
    assert published and f"EXPOSE {published[2]}" in dockerfile and f"PORT={published[2]}" in dockerfile
    assert "--env-file .env" in block and (ROOT / ".env.example").is_file()
    mount = re.search(r'-v "\$PWD/([\w.]+):(/[\w./]+):ro"', block)
    assert mount and f"-e CHATWAIT_API_KEYS_FILE={mount[2]}" in block, "the variable points at the mount"
    name = re.search(r"--name (\w+)", block)
    assert name and f"docker kill -s HUP {name[1]}" in block, "HUP to the container started"
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]' in dockerfile, "gunicorn is PID 1: HUP reaches it"
    assert "_reload" in (ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py reads the settings again on HUP"
    assert "min: it compiles llama.cpp" in block and "--no-binary llama-cpp-python" in dockerfile
    readme = (ROOT / "README.md").read_text()
    assert "`HEALTHCHECK`: `/ready`" in readme and re.search(r"HEALTHCHECK .*\n.*/ready'", dockerfile)


@pytest.fixture(scope="module")
def embedded() -> Iterator[ChatWaitServer]:
    """The service on its defaults: the embedded model (replies bounded, for the test's time)."""
    running = ChatWaitServer({"LOCAL_MAX_TOKENS": "300", "KEEPALIVE_SECONDS": "1"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def real(fake) -> Iterator[ChatWaitServer]:
    """The service in front of a model that calls tools: the fake upstream, under the models the docs name."""
    models = f"gpt-4.1-mini,{MODEL}"
    running = ChatWaitServer(server_env(fake.base_url, OPENAI_MODEL="gpt-4.1-mini", ALLOWED_MODELS=models))
    yield running
    running.stop()


def _pointed(text: str, url: str) -> str:
    return text.replace("http://localhost:8000", url).replace("localhost:8000", url.removeprefix("http://"))


def _bash(text: str, url: str) -> str:
    done = subprocess.run(
        ["bash", "-c", _pointed(text, url)],
        capture_output=True,
        text=True,
        timeout=BASH_SECONDS,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-800:]}"
    return done.stdout


def _session(document: str, runs: str, url: str) -> dict[str, str]:
    """The document's Python blocks pasted one after another into one interpreter: what each printed."""
    namespace: dict = {"__name__": "__main__"}
    printed = {}
    for where, language, text in _blocks():
        marker, case = _case(where, text)
        if where != document or language != "python" or case.why == ELSEWHERE:
            continue
        if runs == EMBEDDED and case.runs != EMBEDDED:
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(_pointed(text, url), f"{document}:{marker}", "exec"), namespace)
        printed[marker] = out.getvalue()
    return printed


def _checked(printed: dict[str, str], runs: str, document: str) -> int:
    count = 0
    for (where, marker), case in CASES.items():
        if where == document and case.runs == runs and marker in printed:
            case.check(printed[marker])
            count += 1
    return count


def test_the_shell_blocks_answer_as_shown_on_the_embedded_model(embedded) -> None:
    ran = 0
    for document, language, text in _blocks():
        _, case = _case(document, text)
        if language == "bash" and case.runs == EMBEDDED:
            case.check(_bash(text, embedded.url))
            ran += 1
    assert ran == 4


def test_the_python_blocks_answer_on_the_embedded_model(embedded) -> None:
    readme = _checked(_session("README.md", EMBEDDED, embedded.url), EMBEDDED, "README.md")
    clients = _checked(_session("docs/clients.md", EMBEDDED, embedded.url), EMBEDDED, "docs/clients.md")
    assert (readme, clients) == (1, 3)


def test_the_blocks_that_need_a_real_model_answer_on_one(real) -> None:
    assert _checked(_session("docs/clients.md", REAL, real.url), REAL, "docs/clients.md") == 2
