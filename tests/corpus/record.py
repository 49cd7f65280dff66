"""Record what today's clients send: each client runs its usual session (a tool called, its result
sent back, an answer) against ChatWait over the fake upstream, through a proxy that keeps every
JSON request body; they are written to tests/corpus/<client>.json, which the contract tests
replay (tests/contract/test_corpus.py). Run it when a client updates (scripts/clients-drift runs
it with the newest ones):

    .venv/bin/python -m tests.corpus.record [--out tests/corpus]

Node clients come from tests/node (or CHATWAIT_NODE_CLIENTS); Python ones from this interpreter.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env
from ..node import CLIENTS, CODEX_MODELS, NODE, claude_code_env, client_bin, codex_env, codex_exec

HERE = Path(__file__).resolve().parent
MAX_BODY = 8 * 1024 * 1024
_HOP = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


class Recorder:
    """A proxy to ChatWait that keeps each POSTed JSON body (with its path) of one client."""

    def __init__(self, target: str) -> None:
        self.target, self.bodies = target, []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(min(length, MAX_BODY))
                with contextlib.suppress(ValueError):  # a body that is not JSON is not recorded
                    recorder.bodies.append({"path": self.path, "body": json.loads(body)})
                self._forward(body)

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                with (
                    httpx.Client(timeout=120) as client,
                    client.stream(self.command, recorder.target + self.path, content=body, headers=headers) as answer,
                ):
                    self.send_response(answer.status_code)
                    for name, value in answer.headers.items():
                        if name.lower() not in _HOP | {"content-encoding"}:
                            self.send_header(name, value)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for piece in answer.iter_bytes():
                        self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # a client hung up
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _args(call: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(call).encode()).decode().rstrip("=")


def _run(command: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode:
        print(f"{command[0]} ended with {done.returncode}: {done.stdout[-500:]} {done.stderr[-500:]}", file=sys.stderr)


def codex(url: str, home: Path) -> None:
    """Codex CLI: a shell call and the answer, with its default configuration."""
    env = codex_env(url, home, FAKE_MODEL)
    prompt = f"List it @tool=exec_command @args={_args({'cmd': 'echo listed'})}"
    flags = ["--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
    _run([str(client_bin("codex")), "exec", *flags, prompt], env, home)


def codex_default_model(url: str, home: Path) -> None:
    """Codex CLI with its default model: its tools as an `additional_tools` item, a call of its
    `functions.exec` tool and the answer."""
    env = codex_env(url, home, CODEX_MODELS[0])
    flags = ["--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
    _run([str(client_bin("codex")), "exec", *flags, f"List it {codex_exec('echo listed')}"], env, home)


def claude_code(url: str, home: Path) -> None:
    """Claude Code: a Bash call and the answer."""
    env = claude_code_env(url, home, FAKE_MODEL)
    prompt = f"List it @tool=Bash @args={_args({'command': 'echo listed', 'description': 'List'})}"
    _run([str(client_bin("claude")), "-p", prompt, "--allowedTools", "Bash"], env, home)


def node_scenario(scenario: str) -> Callable[[str, Path], None]:
    """One scenario of tests/node/clients.mjs (openai-node, the Vercel AI SDK)."""

    def run(url: str, home: Path) -> None:
        _run([str(NODE), str(CLIENTS / "clients.mjs"), url, FAKE_MODEL, scenario], dict(os.environ), home)

    return run


def anthropic_sdk(url: str, home: Path) -> None:
    """The anthropic SDK: a tool_use block sent back as `model_dump()`, as its docs' loops do."""
    import anthropic

    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    with anthropic.Anthropic(base_url=url, api_key="sk-unused", max_retries=0) as client:
        asked = [{"role": "user", "content": "Weather?"}]
        first = client.messages.create(model=FAKE_MODEL, max_tokens=100, messages=asked, tools=[tool])
        blocks = [block.model_dump() for block in first.content]
        used = next(block for block in blocks if block["type"] == "tool_use")
        result = {"type": "tool_result", "tool_use_id": used["id"], "content": "sunny"}
        turn = [*asked, {"role": "assistant", "content": blocks}, {"role": "user", "content": [result]}]
        with client.messages.stream(model=FAKE_MODEL, max_tokens=100, messages=turn, tools=[tool]) as stream:
            stream.get_final_message()


def openai_sdk(url: str, home: Path) -> None:
    """openai-python: a Responses function call sent back as `model_dump()`, and a chat completion."""
    import openai

    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        first = client.responses.create(model=FAKE_MODEL, input="Weather?", tools=[tool])
        call = first.output[0].model_dump(exclude_none=True)
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
        turn = [{"role": "user", "content": "Weather?"}, call, output]
        with client.responses.stream(model=FAKE_MODEL, input=turn, tools=[tool]) as stream:
            stream.get_final_response()
        client.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": "Hi"}], stream=False)


def langchain(url: str, home: Path) -> None:
    """LangChain's ChatOpenAI on the Responses API with a bound tool: the call, then the answer."""
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    model = ChatOpenAI(model=FAKE_MODEL, base_url=f"{url}/v1", api_key="unused", use_responses_api=True)
    bound = model.bind_tools([get_weather])
    asked = [HumanMessage("Weather in Oslo?")]
    first = bound.invoke(asked)
    results = [ToolMessage("sunny", tool_call_id=call["id"]) for call in first.tool_calls]
    bound.invoke([*asked, first, *results])


def agents_sdk(url: str, home: Path) -> None:
    """The OpenAI Agents SDK (its default, Responses model) running a function tool."""
    import agents
    import openai

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    model = agents.OpenAIResponsesModel(model=FAKE_MODEL, openai_client=client)
    agent = agents.Agent(name="weather", instructions="Answer.", tools=[get_weather], model=model)
    agents.set_tracing_disabled(True)
    agents.Runner.run_sync(agent, "Weather in Oslo?")


CLIENTS_RECORDED: dict[str, tuple[str, Callable[[str, Path], None]]] = {
    "codex": ("@openai/codex", codex),
    "codex-default-model": ("@openai/codex", codex_default_model),
    "claude-code": ("@anthropic-ai/claude-code", claude_code),
    "openai-node": ("openai", node_scenario("openai-responses-tool-stream")),
    "openai-node-chat": ("openai", node_scenario("openai-tool-stream")),
    "vercel-openai-chat": ("@ai-sdk/openai", node_scenario("vercel-stream-tool")),
    "vercel-openai-responses": ("@ai-sdk/openai", node_scenario("vercel-responses-stream-tool")),
    "vercel-anthropic": ("@ai-sdk/anthropic", node_scenario("vercel-messages-stream-tool")),
    "vercel-open-responses": ("@ai-sdk/open-responses", node_scenario("vercel-open-responses-stream-tool")),
    "anthropic-python": ("anthropic", anthropic_sdk),
    "openai-python": ("openai", openai_sdk),
    "langchain-openai": ("langchain-openai", langchain),
    "openai-agents": ("openai-agents", agents_sdk),
}


def version(package: str, node: bool) -> str:
    """The installed version of a client's package."""
    if node:
        found = CLIENTS / "node_modules" / package / "package.json"
        return json.loads(found.read_text())["version"] if found.exists() else "absent"
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("clients", nargs="*", default=list(CLIENTS_RECORDED))
    options = parser.parse_args()
    fake = FakeUpstream()
    models = ",".join((FAKE_MODEL, *CODEX_MODELS))
    server = ChatWaitServer(
        server_env(fake.base_url, MAX_INPUT_TOKENS="200000", TIMEOUT_SECONDS="30", ALLOWED_MODELS=models)
    )
    try:
        for name in options.clients:
            package, session = CLIENTS_RECORDED[name]
            recorder = Recorder(server.url)
            with tempfile.TemporaryDirectory() as home:
                try:
                    session(recorder.url, Path(home))
                except Exception as exc:  # a client that broke is what this records too
                    print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            recorder.close()
            node = name.startswith(("codex", "claude-code", "openai-node", "vercel"))
            found, registry = version(package, node), "npm" if node else "PyPI"
            record = {"client": name, "package": package, "registry": registry, "version": found}
            record["requests"] = recorder.bodies
            (options.out / f"{name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
            print(f"{name} {record['version']}: {len(recorder.bodies)} requests")
    finally:
        server.stop()
        fake.stop()


if __name__ == "__main__":
    main()
